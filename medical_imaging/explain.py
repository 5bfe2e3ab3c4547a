"""Grad-CAM heatmaps (the `grad-cam` library) on a timm backbone, and their overlay PNGs.

At the small input sizes medical screening models often use, the last stage of a CNN is 1-3
pixels wide, which makes a useless one-blob map. We hook the deepest stage whose feature map is
still at least `MIN_CAM_SIDE` pixels wide instead (timm's `feature_info` lists the stages).
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from medical_imaging.model import ImagingTask, LogitsView

MIN_CAM_SIDE = 6


def cam_target_layer(backbone: nn.Module, image_size: int) -> nn.Module:
    """The backbone layer Grad-CAM hooks: deepest stage with a map >= MIN_CAM_SIDE pixels wide."""
    info = getattr(backbone, "feature_info", None)
    if info is not None:
        stages = [(f["module"], f["reduction"]) for f in info]
        wide = [name for name, reduction in stages if image_size // reduction >= MIN_CAM_SIDE]
        if (
            image_size // stages[-1][1] >= MIN_CAM_SIDE
        ):  # big inputs: the whole network's last layer
            last = getattr(backbone, "bn2", None) or getattr(backbone, "conv_head", None)
            if last is not None:
                return last
        return backbone.get_submodule(wide[-1] if wide else stages[0][0])
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("backbone has no convolution for Grad-CAM")
    return convs[-1]


def gradcam(
    task: ImagingTask, pixels: torch.Tensor, class_index: int, image_size: int
) -> np.ndarray:
    """Grad-CAM for one image. Not thread-safe (it hooks shared modules): callers serialise it.

    Args:
        task: The trained classifier.
        pixels: (C, H, W) model input in [0, 1].
        class_index: Class whose evidence is shown (usually the predicted one).
        image_size: Model input side, to pick the layer.

    Returns:
        (H, W) float32 heatmap in [0, 1].
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    device = next(task.parameters()).device
    view = LogitsView(task).eval()
    layer = cam_target_layer(task.backbone, image_size)
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        GradCAM(model=view, target_layers=[layer]) as cam,
    ):
        heatmap = cam(
            input_tensor=pixels[None].float().clone().to(device),
            targets=[ClassifierOutputTarget(int(class_index))],
        )
    task.zero_grad(set_to_none=True)  # the backward pass filled parameter gradients: drop them
    return np.nan_to_num(heatmap[0]).astype(np.float32)


def overlay_png(pixels: torch.Tensor, heatmap: np.ndarray, size: int = 256) -> bytes:
    """A PNG of the heatmap (jet colours) blended over the image, upscaled to `size` pixels."""
    from PIL import Image
    from pytorch_grad_cam.utils.image import show_cam_on_image

    image = pixels.float().cpu()
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    rgb = (
        np.asarray(
            Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).resize(
                (size, size), Image.BILINEAR
            ),
            dtype=np.float32,
        )
        / 255.0
    )
    mask = np.asarray(
        Image.fromarray(heatmap).resize((size, size), Image.BILINEAR), dtype=np.float32
    )
    blended = show_cam_on_image(rgb, np.clip(mask, 0, 1), use_rgb=True, image_weight=0.6)
    buffer = io.BytesIO()
    Image.fromarray(blended).save(buffer, format="PNG")
    return buffer.getvalue()
