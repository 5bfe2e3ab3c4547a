"""The classifier: a timm backbone (pooled features) plus a linear head, wrapped as a training task.

The task normalises [0, 1] pixels with ImageNet statistics, so augmentation, inference and
Grad-CAM all feed it the same kind of tensor. Its `backbone` attribute lets the shared loop
freeze the pretrained features for the first epochs and give them a lower learning rate.
`load_state_dict` also reads the plain timm classifier's keys the artifact stores
(`medical_imaging.timm_format`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from shared.models import EFFICIENTNET_ALIASES, EFFICIENTNET_TIMM_ARCH, load_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pooled_width(backbone: nn.Module) -> int:
    """Width of what a timm backbone built with `num_classes=0` returns: `head_hidden_size`
    where a head convolution follows the pooling (MobileNetV3), else `num_features`."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


class ImagingTask(nn.Module):
    """Backbone + head; `forward(batch)` returns logits and, with labels, the class-weighted loss.

    Args:
        backbone: timm model built with `num_classes=0` (returns pooled features).
        n_classes: Number of labels.
        in_chans: 1 or 3 input channels.
        class_weights: Optional (n_classes,) weights of the cross-entropy (class imbalance).
        drop_rate: Dropout before the head.
    """

    def __init__(
        self,
        backbone: nn.Module,
        n_classes: int,
        in_chans: int,
        class_weights: torch.Tensor | None = None,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Dropout(drop_rate), nn.Linear(pooled_width(backbone), n_classes)
        )
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if in_chans == 1:  # the folded stem sums the RGB filters, so gray pixels see one mean/std
            mean, std = mean.mean(0, keepdim=True), std.mean(0, keepdim=True)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)
        weights = torch.ones(n_classes) if class_weights is None else class_weights.float()
        self.register_buffer("class_weights", weights, persistent=False)
        self.register_load_state_dict_pre_hook(_from_timm_keys)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) pixels in [0, 1] -> (B, n_classes) logits."""
        pixels = pixels.to(self.mean.dtype)  # float32, or the model's dtype once cast (bf16)
        return self.head(self.backbone((pixels - self.mean) / self.std))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.logits(batch["pixels"])
        out = {"logits": logits}
        if "labels" in batch:
            out["loss"] = F.cross_entropy(
                logits, batch["labels"], weight=self.class_weights.to(logits.dtype)
            )
        return out


def _from_timm_keys(module: ImagingTask, state_dict: dict, prefix: str, *_: object) -> None:
    """Load hook: renames a timm classifier's state dict (the artifact's) onto the task's keys."""
    from medical_imaging.timm_format import task_state_from_timm

    own = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    renamed = task_state_from_timm(own, module.backbone.state_dict().keys())
    if renamed is own:
        return
    for key in own:
        del state_dict[prefix + key]
    state_dict.update({prefix + k: v for k, v in renamed.items()})


class LogitsView(nn.Module):
    """`forward(pixels) -> logits`: the plain classifier interface Grad-CAM and quantization expect."""

    def __init__(self, task: ImagingTask) -> None:
        super().__init__()
        self.task = task

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.task.logits(pixels)


def timm_arch(name: str) -> str:
    """The timm architecture behind a backbone name (packaged alias or `random:` prefix)."""
    if name.lower() in EFFICIENTNET_ALIASES:
        return EFFICIENTNET_TIMM_ARCH
    return name.removeprefix("random:")


def build_backbone(name: str, in_chans: int, pretrained: bool = True) -> nn.Module:
    """A timm backbone returning pooled features; pretrained weights come through `load_model`."""
    if pretrained:
        return load_model(name, "image-classifier", num_classes=0, in_chans=in_chans)
    import timm

    return timm.create_model(timm_arch(name), pretrained=False, num_classes=0, in_chans=in_chans)


def build_task(
    backbone_name: str,
    n_classes: int,
    in_chans: int,
    *,
    drop_rate: float = 0.2,
    class_weights: torch.Tensor | None = None,
    pretrained: bool = True,
) -> ImagingTask:
    """The training task for `backbone_name` with a fresh head of `n_classes`."""
    backbone = build_backbone(backbone_name, in_chans, pretrained)
    return ImagingTask(backbone, n_classes, in_chans, class_weights, drop_rate)


def balanced_class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (C * n_c), so every class carries the same total weight."""
    counts = torch.bincount(labels, minlength=n_classes).float().clamp(min=1)
    return counts.sum() / (n_classes * counts)
