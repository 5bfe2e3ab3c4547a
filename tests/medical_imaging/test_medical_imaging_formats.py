"""The artifact's weights open with timm alone and give the runtime's logits."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import medical_imaging
from medical_imaging.timm_format import task_state_from_timm
from shared.artifacts import load_json, save_weights
from shared.errors import ArtifactError
from shared.registry import load_runtime
from shared.settings import ServeSettings


@pytest.fixture(scope="module")
def loaded(trained):
    artifact = trained("medical_imaging")
    runtime = load_runtime(medical_imaging.VERTICAL, artifact, ServeSettings(device="cpu"))
    torch.manual_seed(0)
    pixels = torch.rand(4, runtime.cfg.in_chans, runtime.cfg.image_size, runtime.cfg.image_size)
    with torch.inference_mode():
        logits = runtime.task.logits(pixels)
    return artifact, runtime, pixels, logits


def _normalised(pixels, pretrained_cfg):
    mean = torch.tensor(pretrained_cfg["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(pretrained_cfg["std"]).view(1, -1, 1, 1)
    return (pixels - mean) / std


def test_timm_local_dir_rebuilds_the_classifier_with_the_runtime_logits(loaded):
    import timm

    artifact, runtime, pixels, logits = loaded
    model = timm.create_model(f"local-dir:{artifact}", pretrained=True).eval()
    cfg = model.pretrained_cfg
    assert cfg["label_names"] == runtime.labels and model.num_classes == len(runtime.labels)
    assert tuple(cfg["input_size"]) == (runtime.cfg.in_chans, *(runtime.cfg.image_size,) * 2)
    with torch.inference_mode():
        out = model(_normalised(pixels, cfg))
    torch.testing.assert_close(out, logits, atol=1e-5, rtol=1e-5)
    config = json.loads((artifact / "config.json").read_text())
    assert config["architecture"] == "test_efficientnet" and config["num_features"] > 0
    assert config["model_args"]["in_chans"] == runtime.cfg.in_chans


def test_create_model_then_load_state_dict_works_too(loaded):
    import timm

    artifact, runtime, pixels, logits = loaded
    info = json.loads((artifact / "manifest.json").read_text())["timm"]
    model = timm.create_model(
        info["architecture"], num_classes=info["num_classes"], in_chans=info["in_chans"]
    )
    model.load_state_dict(load_file(str(artifact / "model.safetensors")))  # strict
    overlay = timm.create_model(
        info["architecture"],
        num_classes=info["num_classes"],
        in_chans=info["in_chans"],
        pretrained=True,
        # num_classes too: timm drops a classifier whose size differs from the overlay's
        pretrained_cfg_overlay={
            "file": str(artifact / "model.safetensors"),
            "num_classes": info["num_classes"],
            "input_size": tuple(info["input_size"]),
        },
    )
    x = _normalised(pixels, info)
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(x), logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(overlay.eval()(x), logits, atol=1e-5, rtol=1e-5)


def test_the_stored_keys_are_timms_and_an_older_artifact_still_loads(loaded, tmp_path):
    artifact, runtime, pixels, logits = loaded
    keys = set(load_file(str(artifact / "model.safetensors")))
    assert "classifier.weight" in keys and not any(
        k.startswith(("backbone.", "head.")) for k in keys
    )
    old = tmp_path / "old"
    shutil.copytree(artifact, old)
    save_weights(old / "model.safetensors", runtime.task.state_dict())  # the layout before
    again = load_runtime(medical_imaging.VERTICAL, old, ServeSettings(device="cpu"))
    with torch.inference_mode():
        torch.testing.assert_close(again.task.logits(pixels), logits)
    assert load_json(old / "calibration.json") == runtime.calibration


def test_weights_of_another_model_fail_with_a_clear_message(loaded):
    _, runtime, _, _ = loaded
    state = {
        "conv_stem.weight": torch.zeros(1),
        "a.weight": torch.zeros(1),
        "b.bias": torch.zeros(1),
    }
    with pytest.raises(ArtifactError, match="classifier"):
        task_state_from_timm(state, runtime.task.backbone.state_dict().keys())


def test_the_packaged_grayscale_efficientnet_round_trips_through_timm(tmp_path):
    import timm

    from medical_imaging.model import build_task
    from medical_imaging.timm_format import save_timm

    task = build_task("efficientnet_lite0", 3, 1).eval()  # the default backbone, stem folded
    save_timm(task, tmp_path, ["a", "b", "c"], 64)
    model = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    assert model.pretrained_cfg["architecture"] == "tf_efficientnet_lite0"
    assert model.pretrained_cfg["mean"] == pytest.approx([task.mean.item()], abs=1e-6)
    pixels = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(
            model(_normalised(pixels, model.pretrained_cfg)),
            task.logits(pixels),
            atol=1e-5,
            rtol=1e-5,
        )
