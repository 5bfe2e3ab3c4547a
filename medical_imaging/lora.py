"""LoRA (or IA3) on the timm backbone: training through an adapter, its artifact, loading it.

`adapter: {method: lora, r: 8}` in the config fine-tunes through peft instead of updating the
backbone (`shared.adapters`):

- **Adapted layers** (`target_modules: null`): every convolution that is not grouped (the stem,
  the 1x1 expansions and projections, the head convolution) and every Linear layer of the
  backbone (`adapted_layers`). peft's LoRA leaves depthwise convolutions alone; they hold a few
  percent of EfficientNet-Lite0's weights.
- **Norm layers** are trained whole and stored in the adapter (peft's `modules_to_save`): their
  running statistics follow the customer's images (ImageNet's do not fit an X-ray), while the
  base model's own stay as loaded, so its weights hash holds.

The adapter artifact holds `adapter/adapter_model.safetensors` and `adapter/adapter_config.json`
(peft's format), `adapter/heads.safetensors` (the linear head), `calibration.json`, and the
manifest's `adapter` section: the method, the base model's name (the config's `model`) and the
sha256 of its weights. No base weight is stored; :func:`load_task` rebuilds the base by its name,
refuses one whose hash differs, and folds the adapter in (the service then runs, and explains,
a plain classifier). `verticals compress medical_imaging --method lora-merge` writes that merged
classifier as an ordinary artifact (timm's format).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from shared.adapters import HEADS_FILE as ADAPTER_HEADS
from shared.adapters import (
    AdapterConfig,
    adapter_section,
    apply_lora,
    head_tensors,
    is_adapted,
    load_adapter,
    load_heads,
    merge_lora,
    save_adapter,
)
from shared.artifacts import load_weights, save_weights

from .model import ImagingTask, build_task

ADAPTER_DIR = "adapter"
HEADS_FILE = f"{ADAPTER_DIR}/{ADAPTER_HEADS}"
MANIFEST_KEY = "adapter"
"""The manifest section of an adapter artifact: method, base model, its hash, sizes."""


def adapted_layers(backbone: nn.Module) -> list[str]:
    """Names of the layers LoRA adapts by default: ungrouped convolutions and Linear layers."""
    return [
        name
        for name, module in backbone.named_modules()
        if (isinstance(module, nn.Conv2d) and module.groups == 1) or isinstance(module, nn.Linear)
    ]


def norm_layers(backbone: nn.Module) -> list[str]:
    """Names of the backbone's batch-norm layers (timm's `BatchNormAct2d` is one)."""
    return [
        name
        for name, module in backbone.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]


def adapt(task: ImagingTask, cfg: AdapterConfig) -> ImagingTask:
    """`task` with its backbone wrapped by a fresh adapter (in place; the head is untouched)."""
    task.backbone = apply_lora(
        task.backbone,
        cfg,
        default_targets=adapted_layers(task.backbone),
        modules_to_save=norm_layers(task.backbone) or None,
    )
    return task


def section(task: ImagingTask, base_name: str) -> dict[str, Any]:
    """The manifest's `adapter` section of `task`, whose backbone carries the adapter."""
    record = adapter_section(task.backbone, base_name)
    # the norm layers' names say nothing the architecture does not: their count will do
    record["norm_layers_trained"] = len(record.pop("modules_to_save", []))
    return record


def peft_format(base_name: str) -> dict[str, str]:
    """The model card's snippet (manifest `formats`) for opening the adapter with peft."""
    return {
        "library": "peft",
        "code": "import timm\nfrom peft import PeftModel\n\n"
        f"# the base is {base_name!r} (`verticals` resolves packaged names such as "
        "efficientnet_lite0)\n"
        'backbone = timm.create_model("ARCH", pretrained=True, num_classes=0, in_chans=C)\n'
        'backbone = PeftModel.from_pretrained(backbone, "ARTIFACT/adapter").merge_and_unload()\n'
        "# logits = head(backbone(normalised pixels)); the head is adapter/heads.safetensors",
    }


def write_adapter(folder: Path, task: ImagingTask, base_name: str) -> None:
    """Writes `task`'s adapter and head into the artifact folder `folder` (no base weight)."""
    save_adapter(task.backbone, folder / ADAPTER_DIR, base_name)
    save_weights(folder / HEADS_FILE, head_tensors({"head": task.head}))


def is_adapter_artifact(manifest: dict[str, Any]) -> bool:
    """Whether the manifest is an adapter artifact's (a merged one is not)."""
    return bool(manifest.get(MANIFEST_KEY))


def adapter_task(artifact: Path, cfg, labels: list[str], record: dict[str, Any]) -> ImagingTask:
    """The task of an adapter artifact: the base named in `record` (its hash checked) with the
    artifact's adapter and head, in eval mode.

    Raises:
        ArtifactError: a file is missing, the base's weights are not the ones the adapter was
            trained on, or the head does not fit the artifact's labels.
    """
    task = build_task(record["base_model"], len(labels), cfg.in_chans, pretrained=True)
    task.backbone = load_adapter(
        task.backbone, artifact / ADAPTER_DIR, record["base_sha256"], record["base_model"]
    )
    load_heads({"head": task.head}, artifact / HEADS_FILE, f"the {len(labels)} labels")
    return task.eval()


def merged(task: ImagingTask) -> ImagingTask:
    """`task` with its adapter folded into the backbone, in place: a plain `ImagingTask`."""
    if is_adapted(task.backbone):
        task.backbone = merge_lora(task.backbone)
    # peft froze the base; a plain classifier's weights take gradients again (Grad-CAM needs
    # them to reach the activations it hooks)
    return task.requires_grad_(True).eval()


def load_task(artifact: Path, manifest: dict[str, Any], cfg, labels: list[str]) -> ImagingTask:
    """The fp32 classifier of any imaging artifact, in eval mode on the CPU: the stored network
    (`model.safetensors`), or an adapter artifact's base with its adapter folded in."""
    if is_adapter_artifact(manifest):
        return merged(adapter_task(artifact, cfg, labels, manifest[MANIFEST_KEY]))
    task = build_task(cfg.model, len(labels), cfg.in_chans, pretrained=False)
    task.load_state_dict(load_weights(artifact / "model.safetensors"))
    return task.eval()


# --- `verticals compress medical_imaging --method lora-merge` --------------------------------

CHECK_IMAGES = 64
"""Validation images the merged classifier is compared on with the adapter on its base."""


def compress_merge(job) -> dict[str, Any]:
    """`Compressor.apply` for `lora-merge`: the adapter folded into its base, written as an
    ordinary artifact in timm's format (`model.safetensors`, `config.json`); `adapter/` goes.

    Records the merged adapter and the check against the adapter on its base (largest logit
    difference, label agreement) on up to `CHECK_IMAGES` validation images of `job.data`.

    Raises:
        ArtifactError: when the artifact is not an adapter artifact.
    """
    import shutil

    import torch

    from shared.artifacts import read_manifest
    from shared.compression import MANIFEST_UPDATE, compare_outputs
    from shared.errors import ArtifactError

    from .config import MedicalImagingConfig
    from .datasets import load_images, read_source, resolve_source_splits
    from .timm_format import TIMM_USAGE, save_timm, timm_summary

    manifest = read_manifest(job.source, vertical="medical_imaging")
    if not is_adapter_artifact(manifest):
        raise ArtifactError(
            f"{job.source} is a full model, not an adapter artifact: lora-merge folds the "
            "adapter of a model trained with adapter.method=lora into its base"
        )
    cfg = MedicalImagingConfig.model_validate(manifest["config"])
    labels = list(manifest["label_map"])
    record = manifest[MANIFEST_KEY]
    adapted = adapter_task(job.source, cfg, labels, record)
    plain = merged(copy.deepcopy(adapted))
    source = read_source(
        job.data, class_names=cfg.class_names, columns=cfg.columns, label_map=cfg.label_map
    )
    split = resolve_source_splits(source, cfg.val_fraction, cfg.test_fraction, cfg.trainer.seed)
    pixels = load_images(
        source, split.indices()["val"][:CHECK_IMAGES], cfg.image_size, cfg.in_chans
    )
    with torch.inference_mode():
        check = compare_outputs(adapted, plain, [{"pixels": pixels.float()}])
    shutil.rmtree(job.out / ADAPTER_DIR)
    save_timm(plain, job.out, labels, cfg.image_size)
    keys = ("method", "base_model", "base_sha256", "r", "alpha", "target_modules")
    return {
        "merged_adapter": {k: record[k] for k in keys if k in record},
        "check": check,
        MANIFEST_UPDATE: {
            MANIFEST_KEY: None,
            "formats": [TIMM_USAGE],
            "timm": timm_summary(plain, cfg.image_size),
        },
    }
