"""Model inputs and augmentations for medical images (torchvision v2, on float tensors in [0, 1]).

Only changes that keep a finding's meaning: a few degrees of rotation, small shifts and zooms,
mild brightness and contrast. Horizontal flips only when the config allows them (laterality).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from medical_imaging.config import AugmentConfig


def to_model_input(image: np.ndarray, size: int, in_chans: int) -> torch.Tensor:
    """(H, W) or (H, W, 3) float array in [0, 1] -> (in_chans, size, size) float tensor.

    Gray becomes RGB by repetition for a 3-channel backbone; colour becomes luminance for a
    1-channel one (whose stem was folded from the RGB weights).
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    if tensor.shape[0] == 3 and in_chans == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        tensor = (tensor * weights).sum(0, keepdim=True)
    elif tensor.shape[0] == 1 and in_chans == 3:
        tensor = tensor.expand(3, -1, -1)
    if tuple(tensor.shape[1:]) != (size, size):
        tensor = F.interpolate(
            tensor[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0]
    return tensor.clamp(0.0, 1.0).contiguous()


def build_augment(cfg: AugmentConfig) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A per-image training transform, or None when augmentation is off."""
    if not cfg.enabled:
        return None
    from torchvision.transforms import v2

    steps: list = [
        v2.RandomAffine(
            degrees=cfg.rotation_deg, translate=(cfg.translate, cfg.translate), scale=cfg.scale
        ),
    ]
    if cfg.brightness or cfg.contrast:
        steps.append(v2.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast))
    if cfg.hflip:
        steps.append(v2.RandomHorizontalFlip())
    compose = v2.Compose(steps)
    return lambda image: compose(image).clamp(0.0, 1.0)


def tta_views(images: torch.Tensor, hflip: bool) -> list[torch.Tensor]:
    """Test-time views of a (B, C, H, W) batch: itself, two small shifts, and a flip if allowed."""
    shift = max(1, images.shape[-1] // 32)
    views = [images]
    for dy, dx in ((shift, shift), (-shift, -shift)):
        views.append(_shift(images, dy, dx))
    if hflip:
        views.append(images.flip(-1))
    return views


def _shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shifts with edge replication (no wrap-around, unlike torch.roll)."""
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
    padded = F.pad(images, pad, mode="replicate")
    h, w = images.shape[-2:]
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]
