"""Class-evidence heatmaps (the `grad-cam` library) on a timm backbone, and their overlay PNGs.

Which layer, and how its gradients are used, decides whether a map shows the finding or the frame:

- The last layers of a CNN see the whole image at the small inputs screening models use (64 px:
  a 2x2 map whose every cell covers the full scan), so their maps do not point at the lesion.
- A shallow stage (stride 8) is sharp but generic: its channels are edge and blob detectors that
  fire on lung borders and on the zero padding at the image border and corners as much as on the
  lesion, and Grad-CAM's one weight per channel (the gradient averaged over the map) cannot tell
  those places apart.

So we hook the deepest stage that is at most `MAX_CAM_REDUCTION` times smaller than the input and
still `MIN_CAM_SIDE` pixels wide, and weight its activations by their gradients position by
position (HiResCAM). That equals Grad-CAM on the last layer before global pooling, and keeps the
gradient's location on an intermediate one.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from medical_imaging.model import ImagingTask, LogitsView

MIN_CAM_SIDE = 4
MAX_CAM_REDUCTION = 16
TITLE_PX, COLORBAR_PX = 34, 74  # the overlay's margins: the title above, the colour bar right


def cam_target_layer(backbone: nn.Module, image_size: int) -> nn.Module:
    """The backbone layer the heatmap hooks.

    For timm backbones: the deepest stage (`feature_info`) downsampled at most
    `MAX_CAM_REDUCTION` times whose map is at least `MIN_CAM_SIDE` pixels wide, else the first
    stage. Other backbones: the last convolution.
    """
    info = getattr(backbone, "feature_info", None)
    if info is not None:
        stages = [(f["module"], f["reduction"]) for f in info]
        usable = [
            name
            for name, reduction in stages
            if reduction <= MAX_CAM_REDUCTION and image_size // reduction >= MIN_CAM_SIDE
        ]
        return backbone.get_submodule(usable[-1] if usable else stages[0][0])
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("backbone has no convolution for Grad-CAM")
    return convs[-1]


def gradcam(
    task: ImagingTask, pixels: torch.Tensor, class_index: int, image_size: int
) -> np.ndarray:
    """Heatmap of the evidence for one class in one image (HiResCAM on `cam_target_layer`).

    Not thread-safe (it hooks shared modules): callers serialise it.

    Args:
        task: The trained classifier.
        pixels: (C, H, W) model input in [0, 1].
        class_index: Class whose evidence is shown (usually the predicted one).
        image_size: Model input side, to pick the layer.

    Returns:
        (H, W) float32 heatmap in [0, 1] (1 at the strongest evidence).
    """
    from pytorch_grad_cam import HiResCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    device = next(task.parameters()).device
    view = LogitsView(task).eval()
    layer = cam_target_layer(task.backbone, image_size)
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        HiResCAM(model=view, target_layers=[layer]) as cam,
    ):
        # the input takes a gradient, so the hooked activations do even where every weight is
        # frozen (an adapter's base, a tenant's shared backbone)
        heatmap = cam(
            input_tensor=pixels[None].float().clone().to(device).requires_grad_(True),
            targets=[ClassifierOutputTarget(int(class_index))],
        )
    task.zero_grad(set_to_none=True)  # the backward pass filled parameter gradients: drop them
    return np.nan_to_num(heatmap[0]).astype(np.float32)


def overlay_png(
    pixels: torch.Tensor,
    heatmap: np.ndarray,
    size: int = 256,
    *,
    label: str | None = None,
    probability: float | None = None,
) -> bytes:
    """A PNG of the heatmap (jet colours) blended over the image, with a title and a colour bar.

    The scan and its heatmap fill a `size` x `size` panel; the title above it names the predicted
    `label` and its `probability` when given, and the colour bar on the right reads the heatmap's
    relative scale (0: no evidence, 1: the strongest in this image). The PNG is
    `(size + COLORBAR_PX)` wide and `(size + TITLE_PX)` high.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from PIL import Image

    dpi, top = 100, TITLE_PX
    width, height = size + COLORBAR_PX, size + TITLE_PX
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)  # Agg, no pyplot: thread-safe
    canvas = FigureCanvasAgg(figure)
    panel = figure.add_axes((0, 0, size / width, size / height))
    panel.imshow(_blend(pixels, heatmap, size), interpolation="nearest")
    panel.set_axis_off()
    bar = figure.add_axes((size / width + 0.04, 0.06, 0.05, size / height - 0.12))
    mappable = ScalarMappable(norm=Normalize(0, 1), cmap="jet")
    colorbar = figure.colorbar(mappable, cax=bar, ticks=[0, 0.5, 1])
    colorbar.ax.tick_params(labelsize=7)
    colorbar.set_label("evidence (relative)", fontsize=7)
    figure.text(0.02, 1 - 0.5 * top / height, _title(label, probability), va="center", fontsize=10)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _title(label: str | None, probability: float | None) -> str:
    """The overlay's title: the predicted label and its probability, when the caller gives them."""
    if label is None:
        return "Grad-CAM heatmap"
    if probability is None:
        return f"predicted: {label}"
    return f"predicted: {label}  (p = {probability:.2f})"


def _blend(pixels: torch.Tensor, heatmap: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the image (gray or RGB) under the jet-coloured heatmap."""
    from PIL import Image
    from pytorch_grad_cam.utils.image import show_cam_on_image

    image = pixels.float().cpu()
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    rgb = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    rgb = np.asarray(rgb.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    mask = np.asarray(
        Image.fromarray(heatmap).resize((size, size), Image.BILINEAR), dtype=np.float32
    )
    return show_cam_on_image(rgb, np.clip(mask, 0, 1), use_rgb=True, image_weight=0.6)
