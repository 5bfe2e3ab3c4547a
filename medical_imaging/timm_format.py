"""The artifact's weights in timm's own format: `model.safetensors` plus a hub-style `config.json`.

The training task wraps a timm backbone (`backbone.*`, built with `num_classes=0`) and a linear
head (`head.1.*`). The artifact stores instead the state dict of the plain timm classifier
(`timm.create_model(arch, num_classes=N, in_chans=C)`), with timm's key names, so that::

    model = timm.create_model("local-dir:ARTIFACT", pretrained=True)

rebuilds the classifier offline and returns the runtime's logits (before temperature scaling)
for inputs normalised with the `mean`/`std` in `config.json`. The task reads both layouts: the
timm one, and the `backbone.*`/`head.1.*` one of artifacts written before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from shared.artifacts import save_weights
from shared.errors import ArtifactError

TIMM_USAGE = {
    "library": "timm",
    "pipeline_tag": "image-classification",
    "code": "import timm, torch\n\n"
    'model = timm.create_model("local-dir:ARTIFACT", pretrained=True).eval()\n'
    "cfg = model.pretrained_cfg  # input_size, mean, std, label_names\n"
    'mean = torch.tensor(cfg["mean"]).view(1, -1, 1, 1)\n'
    'std = torch.tensor(cfg["std"]).view(1, -1, 1, 1)\n'
    "logits = model((pixels - mean) / std)  # pixels: (B, C, H, W) in [0, 1] at input_size\n"
    "# the service's decision: softmax(logits / temperature), then the threshold, both in\n"
    "# calibration.json",
}
"""The model card's snippet (`shared.model_card`): how timm opens the artifact."""

HEAD_KEYS = ("head.1.weight", "head.1.bias")
"""The task's linear head (`head` is Dropout, Linear)."""


def timm_classifier(task: nn.Module) -> nn.Module:
    """The task as a plain timm classifier: same weights, forward(normalised pixels) -> logits.

    Args:
        task: An `ImagingTask` (backbone built by timm with `num_classes=0`, linear head).
    """
    import timm

    backbone = task.backbone
    n_classes, in_chans = task.head[-1].out_features, task.mean.shape[1]
    model = timm.create_model(
        backbone.pretrained_cfg["architecture"],
        pretrained=False,
        num_classes=n_classes,
        in_chans=in_chans,
    )
    own = task.state_dict()
    state = {k.removeprefix("backbone."): v for k, v in own.items() if k.startswith("backbone.")}
    classifier = classifier_name(model.state_dict(), state.keys())
    state[f"{classifier}.weight"], state[f"{classifier}.bias"] = (own[k] for k in HEAD_KEYS)
    model.load_state_dict(state)  # strict: every key of timm's classifier is filled
    return model.eval()


def classifier_name(full_keys, backbone_keys) -> str:
    """The module name of the classifier: the keys of the full model the backbone lacks.

    Raises:
        ArtifactError: when those keys are not one linear layer's weight and bias.
    """
    extra = sorted(set(full_keys) - set(backbone_keys))
    names = {k.rsplit(".", 1)[0] for k in extra}
    if len(names) != 1 or len(extra) != 2:
        raise ArtifactError(f"cannot tell timm's classifier apart: extra keys {extra}")
    return names.pop()


def task_state_from_timm(state: dict[str, torch.Tensor], backbone_keys) -> dict[str, Any]:
    """A timm classifier's state dict renamed onto the task's keys (`backbone.*`, `head.1.*`).

    A state dict already in the task's layout (artifacts written before) is returned as it is.
    """
    if any(k.startswith("backbone.") for k in state) or not state:
        return state
    classifier = classifier_name(state.keys(), backbone_keys)
    out = {f"backbone.{k}": v for k, v in state.items() if k in set(backbone_keys)}
    out[HEAD_KEYS[0]] = state[f"{classifier}.weight"]
    out[HEAD_KEYS[1]] = state[f"{classifier}.bias"]
    return out


def timm_summary(task: nn.Module, image_size: int) -> dict[str, Any]:
    """What the manifest records under `timm`: how to rebuild and feed the stored classifier."""
    return {
        "layout": "timm",
        "architecture": task.backbone.pretrained_cfg["architecture"],
        "num_classes": int(task.head[-1].out_features),
        "in_chans": int(task.mean.shape[1]),
        "input_size": [int(task.mean.shape[1]), image_size, image_size],
        "mean": [round(float(v), 6) for v in task.mean.flatten()],
        "std": [round(float(v), 6) for v in task.std.flatten()],
    }


def save_timm(task: nn.Module, folder: str | Path, labels: list[str], image_size: int) -> None:
    """Writes `model.safetensors` (timm keys) and timm's `config.json` into `folder`.

    `config.json` is what `timm.models.save_config_for_hf` writes (architecture, num_classes,
    num_features, model_args, pretrained_cfg), with the task's own preprocessing: input size,
    the normalisation the task applies (`mean`, `std`), a plain resize (`crop_pct` 1), and the
    label names.
    """
    from timm.models._hub import save_config_for_hf

    folder = Path(folder)
    model = timm_classifier(task)
    save_weights(folder / "model.safetensors", model.state_dict())
    summary = timm_summary(task, image_size)
    save_config_for_hf(
        model,
        str(folder / "config.json"),
        model_config={"label_names": list(labels)},
        data_config={
            "input_size": tuple(summary["input_size"]),
            "mean": tuple(summary["mean"]),
            "std": tuple(summary["std"]),
            "crop_pct": 1.0,
            "interpolation": "bilinear",
        },
    )
