"""The task, transfer learning through the shared loop, class weights and Grad-CAM."""

from __future__ import annotations

import io
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from medical_imaging.explain import COLORBAR_PX, TITLE_PX, cam_target_layer, gradcam, overlay_png
from medical_imaging.model import balanced_class_weights, build_task
from medical_imaging.training import balanced_sampler, collate_indices
from shared.config import TrainerConfig
from shared.training import fit


def test_class_weights_balance_the_classes():
    weights = balanced_class_weights(torch.tensor([0, 0, 0, 1]), 2)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0])
    task = build_task("random:test_efficientnet", 2, 1, class_weights=weights, pretrained=False)
    batch = {"pixels": torch.rand(4, 1, 32, 32), "labels": torch.tensor([0, 0, 0, 1])}
    out = task(batch)
    per_item = torch.nn.functional.cross_entropy(out["logits"], batch["labels"], reduction="none")
    expected = (per_item * weights[batch["labels"]]).sum() / weights[batch["labels"]].sum()
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_balanced_sampler_draws_the_rare_class_as_often_as_the_common_one():
    labels = torch.tensor([0] * 90 + [1] * 10)
    sampler = balanced_sampler(labels, seed=0)
    drawn = labels[list(sampler)]
    assert len(drawn) == 100
    assert 35 <= int(drawn.sum()) <= 65  # ~50 draws of the 10% class instead of ~10
    assert list(balanced_sampler(labels, seed=0)) == list(balanced_sampler(labels, seed=0))


def test_frozen_epochs_leave_the_backbone_untouched(tmp_path):
    torch.manual_seed(0)
    task = build_task("random:test_efficientnet", 2, 3, pretrained=False)
    before = {k: v.clone() for k, v in task.backbone.named_parameters()}
    head_before = task.head[-1].weight.clone()
    pixels, labels = torch.rand(16, 3, 32, 32).half(), torch.tensor([0, 1] * 8)
    collate = partial(collate_indices, pixels=pixels, labels=labels, augment=None)
    cfg = TrainerConfig(
        epochs=1, batch_size=8, lr=1e-2, backbone_lr=1e-3, freeze_backbone_epochs=1, progress=False
    )
    fit(task, list(range(16)), collate, cfg, tmp_path / "frozen")
    assert all(torch.equal(before[k], v) for k, v in task.backbone.named_parameters())
    assert not torch.equal(head_before, task.head[-1].weight)
    cfg = cfg.model_copy(update={"freeze_backbone_epochs": 0})
    fit(task, list(range(16)), collate, cfg, tmp_path / "unfrozen")
    assert any(not torch.equal(before[k], v) for k, v in task.backbone.named_parameters())


@pytest.mark.parametrize(
    ("size", "expected"),
    [(4, "blocks.0"), (16, "blocks.1"), (32, "blocks.2"), (64, "blocks.3"), (224, "blocks.3")],
)
def test_cam_layer_keeps_a_usable_resolution(size, expected):
    # the deepest stage at most 16x downsampled and >= 4 px wide, never the whole-image last layer
    task = build_task("random:test_efficientnet", 2, 3, pretrained=False)
    assert cam_target_layer(task.backbone, size) is task.backbone.get_submodule(expected)


def test_gradcam_heatmap_and_overlay():
    torch.manual_seed(0)
    task = build_task("random:test_efficientnet", 2, 1, pretrained=False).eval()
    pixels = torch.rand(1, 48, 48)
    heatmap = gradcam(task, pixels, 1, 48)
    assert heatmap.shape == (48, 48) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0 and heatmap.max() <= 1 and heatmap.max() > 0
    image = Image.open(io.BytesIO(overlay_png(pixels, heatmap, label="lesion", probability=0.9)))
    assert image.format == "PNG" and image.size == (256 + COLORBAR_PX, 256 + TITLE_PX)
    assert all(p.grad is None for p in task.parameters())  # explanation leaves no gradients behind


@pytest.mark.slow
def test_packaged_efficientnet_backbone_folds_its_stem_for_grayscale():
    rgb = build_task("efficientnet_lite0", 2, 3)
    gray = build_task("efficientnet_lite0", 2, 1)
    stem_rgb, stem_gray = rgb.backbone.conv_stem.weight, gray.backbone.conv_stem.weight
    assert stem_gray.shape[1] == 1 and stem_rgb.shape[1] == 3
    assert torch.allclose(stem_gray[:, 0], stem_rgb.sum(1), atol=1e-5)  # ImageNet weights, folded
    assert torch.equal(
        rgb.backbone.blocks[3][0].conv_pw.weight, gray.backbone.blocks[3][0].conv_pw.weight
    )
    assert rgb.backbone.num_features == 1280 and rgb.head[-1].out_features == 2
