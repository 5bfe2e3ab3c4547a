"""Many tenants' imaging adapters on one base: each answers as its own classifier, mixed batches
included; missing, removed and full-model tenants; Grad-CAM of a tenant; a restart."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import medical_imaging
from medical_imaging.config import MedicalImagingSettings
from medical_imaging.explain import gradcam
from shared.errors import ArtifactError
from shared.registry import load_runtime
from shared.serving import create_app

VERTICAL = medical_imaging.VERTICAL
URL = "/v1/medical_imaging"
LORA = ["adapter.method=lora", "trainer.lr=0.05", "trainer.warmup_ratio=0", "tta=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, write_npz, train_cli):
    """{name: adapter artifact} for the served one ("main") and two tenants, each trained on its
    own images with its own seed and labels; and a full (non-adapter) artifact."""
    root = tmp_path_factory.mktemp("imaging_tenants")
    labels = {
        "main": ("normal", "lesion"),
        "acme": ("clear", "nodule"),
        "globex": ("benign", "malignant"),
    }
    out = {}
    for seed, (name, (negative, positive)) in enumerate(labels.items()):
        data = write_npz(root / f"{name}.npz", seed=seed)
        classes = f"class_names=[{negative},{positive}]"
        args = (classes, f"positive_label={positive}", f"trainer.seed={seed}", *LORA)
        result = train_cli(data, root / name, *args)
        assert result.exit_code == 0, result.output
        out[name] = root / name / "artifact"
    result = train_cli(write_npz(root / "full.npz"), root / "full", "class_names=[normal,lesion]")
    assert result.exit_code == 0, result.output
    return out, root / "full" / "artifact"


@pytest.fixture()
def tenants(trained, tmp_path):
    artifacts, _ = trained
    folder = tmp_path / "tenants"
    for name in ("acme", "globex"):
        shutil.copytree(artifacts[name], folder / name)
    return folder


def _settings(folder=None, capacity: int = 8) -> MedicalImagingSettings:
    return MedicalImagingSettings(device="cpu", tenants_dir=folder, tenant_cache_size=capacity)


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (28, 28), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGES = [_png(seed) for seed in range(4)]


def _alone(artifact) -> list[dict]:
    """Each image through the artifact served on its own (adapter folded in), one at a time."""
    runtime = load_runtime(VERTICAL, artifact, _settings())
    return [runtime._batch([(runtime.prepare(png), None)])[0] for png in IMAGES]


def test_each_tenant_answers_as_its_own_classifier_even_in_one_mixed_batch(trained, tenants):
    artifacts, _ = trained
    served = load_runtime(VERTICAL, artifacts["main"], _settings(tenants))
    names = [None, "acme", "globex"]
    items = [
        (served.prepare(png, served=served.resolve(name)), name) for png in IMAGES for name in names
    ]
    mixed = served._batch(items)  # one engine batch, three adapters
    alone = {name: _alone(artifacts[name or "main"]) for name in names}
    for k, ((_, name), result) in enumerate(zip(items, mixed, strict=True)):
        expected = alone[name][k // len(names)]
        assert result["label"] == expected["label"]
        assert list(result["probabilities"]) == list(expected["probabilities"])  # its own labels
        np.testing.assert_allclose(
            list(result["probabilities"].values()),
            list(expected["probabilities"].values()),
            atol=1e-4,
        )
    # the adapters are not no-ops: the shared backbone's features differ with each adapter
    pixels = items[0][0][None]
    features = {}
    for name in names:
        with served._adapter_of(name) as classifier, torch.inference_mode():
            features[name] = classifier.task.backbone(pixels).numpy()
    assert np.abs(features["acme"] - features[None]).max() > 1e-3
    assert np.abs(features["globex"] - features["acme"]).max() > 1e-3


def test_a_tenant_leaves_the_base_and_the_served_adapter_untouched(trained, tenants):
    artifacts, _ = trained
    served = load_runtime(VERTICAL, artifacts["main"], _settings(tenants, capacity=1))
    pixels = served.prepare(IMAGES[0])
    before = served._batch([(pixels, None)])[0]["probabilities"]
    for name in ("acme", "globex", "acme"):  # loads, evictions, reloads
        served._batch([(pixels, name)])
    assert served.tenants.cache.evictions >= 2
    # switching adapters kept the shared model in eval mode: no request moves its norms' stats
    assert not any(m.training for m in served.tenants.model.modules())
    after = served._batch([(pixels, None)])[0]["probabilities"]
    np.testing.assert_allclose(list(after.values()), list(before.values()), atol=1e-6)


def test_x_tenant_routes_predict_and_explain_and_names_a_missing_or_bad_tenant(trained, tenants):
    artifacts, _ = trained
    files = {"file": ("scan.png", IMAGES[0], "image/png")}
    with TestClient(create_app(VERTICAL, artifacts["main"], _settings(tenants))) as client:
        labels = {}
        for tenant in (None, "acme", "globex"):
            headers = {"X-Tenant": tenant} if tenant else {}
            reply = client.post(f"{URL}/predict", files=files, headers=headers)
            assert reply.status_code == 200, reply.text
            labels[tenant] = set(reply.json()["probabilities"])
            heat = client.post(f"{URL}/explain", files=files, headers=headers)
            assert heat.status_code == 200 and heat.content[:8] == b"\x89PNG\r\n\x1a\n"
            assert heat.headers["X-Prediction-Label"] in labels[tenant]
        assert labels == {
            None: {"normal", "lesion"},
            "acme": {"clear", "nodule"},
            "globex": {"benign", "malignant"},
        }
        missing = client.post(f"{URL}/predict", files=files, headers={"X-Tenant": "initech"})
        assert missing.status_code == 404 and "initech" in missing.json()["detail"]
        bad = client.post(f"{URL}/explain", files=files, headers={"X-Tenant": "../acme"})
        assert bad.status_code == 422
        info = client.get(f"{URL}/tenants").json()
        assert info["available"] == ["acme", "globex"] and set(info["loaded"]) == {"acme", "globex"}


def test_a_tenant_copied_in_is_served_and_one_removed_is_404_without_restart(trained, tenants):
    artifacts, _ = trained
    files = {"file": ("scan.png", IMAGES[1], "image/png")}
    hooli = {"X-Tenant": "hooli"}
    with TestClient(create_app(VERTICAL, artifacts["main"], _settings(tenants))) as client:
        assert client.post(f"{URL}/predict", files=files, headers=hooli).status_code == 404
        shutil.copytree(artifacts["acme"], tenants / "hooli")
        assert client.post(f"{URL}/predict", files=files, headers=hooli).status_code == 200
        shutil.rmtree(tenants / "hooli")
        assert client.post(f"{URL}/predict", files=files, headers=hooli).status_code == 404
        assert "hooli" not in client.get(f"{URL}/tenants").json()["loaded"]
        assert client.post(f"{URL}/predict", files=files).status_code == 200  # others unharmed
    # and the service starts again on the same folders
    with TestClient(create_app(VERTICAL, artifacts["main"], _settings(tenants))) as client:
        reply = client.post(f"{URL}/predict", files=files, headers={"X-Tenant": "globex"})
        assert reply.status_code == 200 and "benign" in reply.json()["probabilities"]


def test_a_full_model_tenant_is_a_409_and_a_full_served_artifact_is_refused(trained, tenants):
    artifacts, full = trained
    shutil.copytree(full, tenants / "plain")
    files = {"file": ("scan.png", IMAGES[0], "image/png")}
    with TestClient(create_app(VERTICAL, artifacts["main"], _settings(tenants))) as client:
        reply = client.post(f"{URL}/predict", files=files, headers={"X-Tenant": "plain"})
        assert reply.status_code == 409 and "not an adapter artifact" in reply.json()["detail"]
    with pytest.raises(ArtifactError, match="must be an adapter artifact"):
        load_runtime(VERTICAL, full, _settings(tenants))


def test_without_tenants_an_x_tenant_is_a_404_naming_it(trained):
    artifacts, _ = trained
    files = {"file": ("scan.png", IMAGES[0], "image/png")}
    with TestClient(create_app(VERTICAL, artifacts["main"], _settings())) as client:
        reply = client.post(f"{URL}/predict", files=files, headers={"X-Tenant": "acme"})
        assert reply.status_code == 404 and "acme" in reply.json()["detail"]
        assert client.get(f"{URL}/tenants").status_code == 404


def test_a_tenants_heatmap_is_its_own(trained, tenants):
    artifacts, _ = trained
    served = load_runtime(VERTICAL, artifacts["main"], _settings(tenants))
    pixels = served.prepare(IMAGES[2])
    maps = {}
    for name in (None, "acme"):
        png, result = served.explain(pixels, None, name)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert result["label"] in served.resolve(name).labels
        with served._adapter_of(name) as classifier:
            maps[name] = gradcam(classifier.task, pixels, 0, classifier.cfg.image_size)
    assert all(np.isfinite(m).all() and m.max() > 0 for m in maps.values())
    assert np.abs(maps[None] - maps["acme"]).max() > 1e-3  # another adapter, another map
    # Grad-CAM's backward pass left no gradient behind on the shared model
    assert all(p.grad is None for p in served.tenants.model.parameters())
