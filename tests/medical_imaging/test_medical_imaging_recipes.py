"""Imaging recipes: the linear probe, `auto`'s recorded choice, and the input taken from the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medical_imaging.config import MedicalImagingConfig
from medical_imaging.datasets import ImageSource
from medical_imaging.model import build_task
from medical_imaging.recipes import fit_linear_probe, pooled_features, resolve_input
from shared.artifacts import read_manifest


def _source(images: np.ndarray) -> ImageSource:
    from pathlib import Path

    return ImageSource(Path("mem.npz"), ["a", "b"] * (len(images) // 2), arrays=images)


@pytest.mark.parametrize(
    ("shape", "gray", "chans", "size"),
    [
        ((8, 28, 28), True, 1, 64),  # MedMNIST 28 px gray: one channel, at least 64 px
        ((8, 100, 130, 3), True, 1, 128),  # RGB files of a gray scan: still one channel
        ((8, 100, 130, 3), False, 3, 128),  # colour: three; 100 px short side -> 128
        ((8, 600, 800), True, 1, 224),  # large: capped at the backbone's native 224
    ],
)
def test_auto_input_comes_from_the_images(shape, gray, chans, size):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, shape, dtype=np.uint8)
    if gray and len(shape) == 4:
        images[..., 1] = images[..., 2] = images[..., 0]
    cfg, choice = resolve_input(MedicalImagingConfig(), _source(images))
    assert (cfg.in_chans, cfg.image_size) == (chans, size)
    assert choice.as_dict()["in_chans"] == chans and choice.sampled == 8


def test_set_input_is_kept_as_set():
    images = np.zeros((4, 28, 28, 3), dtype=np.uint8)
    cfg, choice = resolve_input(MedicalImagingConfig(in_chans=3, image_size=32), _source(images))
    assert (cfg.in_chans, cfg.image_size, choice) == (3, 32, None)
    cfg, choice = resolve_input(MedicalImagingConfig(image_size=48), _source(images))
    assert (cfg.in_chans, cfg.image_size) == (1, 48)  # only the `auto` field is inferred


def test_the_linear_probe_leaves_the_backbone_alone_and_fits_the_head():
    torch.manual_seed(0)
    task = build_task("random:test_efficientnet", 2, 1, pretrained=False).eval()
    before = {k: v.clone() for k, v in task.backbone.state_dict().items()}
    pixels = torch.rand(24, 1, 32, 32)
    pixels[12:] *= 0.2  # a dark class and a bright one
    labels = np.array([0] * 12 + [1] * 12)
    features = pooled_features(task, pixels)
    fit_linear_probe(task, features, labels, seed=0)
    after = task.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        predicted = task.logits(pixels).argmax(1).numpy()
    assert (predicted == labels).mean() >= 0.9


def test_auto_records_both_recipes_and_the_input(tmp_path, write_npz, train_cli):
    data = write_npz(tmp_path / "d.npz")
    args = ("recipe=auto", "image_size=auto", "class_names=[normal,lesion]")
    result = train_cli(data, tmp_path / "out", *args)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "out" / "artifact")
    recipe = manifest["recipe"]
    assert set(recipe["scores"]) == {"frozen", "finetune"} and recipe["metric"] == "auc"
    assert recipe["method"] == "cv"  # 8 validation images are too few to decide on
    assert recipe["recipe"] == max(recipe["scores"], key=recipe["scores"].get)
    assert (manifest["input"]["in_chans"], manifest["input"]["image_size"]) == (1, 64)
    assert (manifest["config"]["in_chans"], manifest["config"]["image_size"]) == (1, 64)
