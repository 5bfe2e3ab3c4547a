"""LoRA on the timm backbone: what trains, the adapter artifact, its hash check, serving, merging."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import medical_imaging
from medical_imaging.config import MedicalImagingConfig
from medical_imaging.explain import gradcam
from medical_imaging.lora import adapt, adapted_layers, adapter_task, norm_layers
from medical_imaging.model import build_task
from shared.adapters import AdapterConfig, base_weights_hash
from shared.artifacts import read_manifest
from shared.compression import compress_artifact
from shared.errors import ArtifactError
from shared.registry import load_runtime
from shared.settings import ServeSettings

TINY = "random:test_efficientnet"
TRAINS = ["adapter.method=lora", "trainer.lr=0.01", "trainer.warmup_ratio=0"]


@pytest.fixture(scope="module")
def adapter_artifact(tmp_path_factory, write_npz, train_cli):
    root = tmp_path_factory.mktemp("lora")
    data = write_npz(root / "d.npz")
    result = train_cli(data, root / "out", "class_names=[normal,lesion]", *TRAINS)
    assert result.exit_code == 0, result.output
    return root / "out" / "artifact", data


def _runtime(artifact):
    return load_runtime(medical_imaging.VERTICAL, artifact, ServeSettings(device="cpu"))


def _logits(task, seed: int = 0) -> torch.Tensor:
    size = 32
    pixels = torch.rand(4, 1, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return task.eval().logits(pixels)


def test_only_the_adapter_norms_and_head_train_and_the_base_stays_as_loaded():
    task = build_task(TINY, 2, 1)
    convs = adapted_layers(task.backbone)
    grouped = [
        n
        for n, m in task.backbone.named_modules()
        if isinstance(m, torch.nn.Conv2d) and m.groups > 1
    ]
    assert convs and grouped and not set(convs) & set(grouped)  # depthwise ones left alone
    before = base_weights_hash(task.backbone)
    adapt(task, AdapterConfig())
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert trainable and all(
        ".lora_" in n or ".modules_to_save." in n or n.startswith("head.") for n in trainable
    )
    assert any(".lora_A." in n for n in trainable) and any(
        ".modules_to_save." in n for n in trainable
    )
    task.train()
    optimizer = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=0.1)
    out = task({"pixels": torch.rand(4, 1, 32, 32), "labels": torch.tensor([0, 1, 0, 1])})
    out["loss"].backward()
    optimizer.step()
    # norm statistics moved in the adapter's copies, not in the base's layers
    assert base_weights_hash(task.backbone) == before
    assert len(norm_layers(task.backbone.get_base_model())) > 0


def test_an_adapter_artifact_holds_the_adapter_and_head_and_no_backbone(adapter_artifact):
    artifact, _ = adapter_artifact
    manifest = read_manifest(artifact)
    section = manifest["adapter"]
    assert section["method"] == "lora" and section["base_model"] == TINY
    assert section["adapter_parameters"] < section["base_parameters"]
    base = build_task(TINY, 2, 1).backbone
    assert section["norm_layers_trained"] == len(norm_layers(base)) > 0
    assert set(section["target_modules"]) == set(adapted_layers(base))  # peft may shorten names
    assert manifest["recipe"]["reason"].startswith("adapter.method=lora")
    assert not (artifact / "model.safetensors").exists() and "timm" not in manifest
    files = {p.name for p in (artifact / "adapter").iterdir()}
    assert files == {"adapter_model.safetensors", "adapter_config.json", "heads.safetensors"}


def test_the_service_runs_the_adapter_on_its_base_and_it_changes_the_outputs(adapter_artifact):
    artifact, _ = adapter_artifact
    manifest = read_manifest(artifact)
    cfg = MedicalImagingConfig.model_validate(manifest["config"])
    labels = list(manifest["label_map"])
    adapted = adapter_task(artifact, cfg, labels, manifest["adapter"])
    served = _runtime(artifact).task  # the adapter folded in
    torch.testing.assert_close(_logits(served), _logits(adapted), atol=1e-4, rtol=1e-4)
    heatmap = gradcam(served, torch.rand(1, 32, 32), 1, 32)  # the explain endpoint's path
    assert heatmap.shape == (32, 32) and np.isfinite(heatmap).all() and heatmap.max() > 0
    without = build_task(TINY, len(labels), cfg.in_chans)  # the same base and head, no adapter
    without.head.load_state_dict(adapted.head.state_dict())
    assert (_logits(without) - _logits(adapted)).abs().max() > 1e-3


def test_an_adapter_refuses_a_base_whose_weights_differ(adapter_artifact, tmp_path):
    import shutil

    artifact, _ = adapter_artifact
    copy = tmp_path / "artifact"
    shutil.copytree(artifact, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["adapter"]["base_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="sha256"):
        _runtime(copy)


def test_lora_merge_writes_a_plain_artifact_with_the_same_outputs(adapter_artifact, tmp_path):
    artifact, data = adapter_artifact
    out = tmp_path / "merged"
    compress_artifact(medical_imaging.VERTICAL, artifact, out, "lora-merge", data, measure=False)
    manifest = read_manifest(out)
    assert manifest.get("adapter") is None and (out / "model.safetensors").is_file()
    assert manifest["timm"]["architecture"] == "test_efficientnet"  # how timm opens it
    assert not (out / "adapter").exists()
    check = manifest["compression"]["params"]["check"]
    assert check["label_agreement"] == 1.0 and check["max_abs_logit_diff"] < 1e-4
    torch.testing.assert_close(
        _logits(_runtime(out).task), _logits(_runtime(artifact).task), atol=1e-4, rtol=1e-4
    )
    with pytest.raises(ArtifactError, match="not an adapter artifact"):
        compress_artifact(
            medical_imaging.VERTICAL, out, tmp_path / "again", "lora-merge", data, measure=False
        )


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"recipe": "frozen", "adapter": {"method": "lora"}}, "recipe frozen"),
        ({"adapter": {"target_modules": "all-linear"}}, "all-linear"),
    ],
)
def test_an_adapter_config_that_cannot_hold_is_refused(settings, message):
    with pytest.raises(ValidationError, match=message):
        MedicalImagingConfig.model_validate(settings)
