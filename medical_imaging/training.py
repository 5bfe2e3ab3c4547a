"""`verticals train medical_imaging`: fine-tune, calibrate on validation, test, write the artifact."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from medical_imaging.calibration import choose_temperature, choose_threshold, warn_if_small
from medical_imaging.config import MedicalImagingConfig
from medical_imaging.data_import import prepare_splits
from medical_imaging.datasets import ImageSource, load_images, read_source
from medical_imaging.labels import label_semantics, resolve_labels
from medical_imaging.metrics import decide, heldout_metrics, predict_logits, split_metrics
from medical_imaging.model import ImagingTask, balanced_class_weights, build_task
from medical_imaging.recipes import fit_by_recipe, resolve_input
from medical_imaging.timm_format import TIMM_USAGE, save_timm, timm_summary
from medical_imaging.transforms import build_augment
from shared.adapters import is_adapted, training_view
from shared.artifacts import save_json, write_artifact
from shared.calibration import softmax
from shared.data_report import MANIFEST_KEY
from shared.devices import seed_everything
from shared.evaluation import plot_confusion_matrix
from shared.recipes import MANIFEST_KEY as RECIPE_KEY
from shared.training import MetricsEvaluator, TrainResult, fit

log = logging.getLogger(__name__)

FitModel = Callable[..., tuple[tuple[ImagingTask, TrainResult | None], dict[str, Any]]]
"""`fit_model(cfg, build, finetune, pixels, labels, n_classes, run_dir)` -> ((task, training
result or None), manifest keys to add); `build()` is a fresh task of `cfg.model`, `finetune(task,
pixels, labels, run_dir)` the shared loop with validation-AUC early stopping."""


def train(
    cfg: MedicalImagingConfig,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    fit_model: FitModel | None = None,
) -> Path:
    """Trains on `data_path` (manifest, class folders or npz) and writes `out_dir/artifact`.

    `fit_model` replaces how the model is fitted (default: by `cfg.recipe`, see
    `medical_imaging.recipes`); everything around it (data, splits, calibration, test metrics,
    the artifact) stays the same, which is how `medical_imaging.distill` trains a student.

    Early stopping and the best epoch use validation AUC (accuracy when a class is missing from
    validation: AUC is then undefined); the metric used is recorded as `training.monitor` in the
    manifest. The temperature (kept only when it helps under cross-validation) and the threshold
    are fitted on validation; the reported metrics are on the test split (when there is one).

    Data import: `cfg.columns` maps a manifest's columns, `cfg.label_map` (or `class_names`)
    names the labels. A `split` column fixes items' splits; fixed `val` or `test` items turn
    that drawn split off (`medical_imaging.datasets.resolve_source_splits`). The data report
    (rows read, dropped, per split and class, small-split warnings) is logged at the end and
    stored in the manifest as `data_report`.

    Raises:
        DataError: before any training step, when the data cannot be read or a binary task's
            positive class is not certain (`medical_imaging.labels.resolve_labels`).
    """
    seed_everything(cfg.trainer.seed)  # the new head is initialised before fit() runs
    out_dir = Path(out_dir)
    source = read_source(
        data_path, class_names=cfg.class_names, columns=cfg.columns, label_map=cfg.label_map
    )
    order = cfg.class_names or list(cfg.label_map.values())
    names, ids, positive = resolve_labels(source.labels, cfg.positive_label, source.origin, order)
    cfg, input_choice = resolve_input(cfg, source)
    splits, report = prepare_splits(cfg, source, names, ids)
    pixels = {
        k: load_images(source, idx, cfg.image_size, cfg.in_chans)
        for k, idx in splits.items()
        if len(idx)
    }
    labels = {k: torch.as_tensor(ids[idx]) for k, idx in splits.items() if len(idx)}
    log.info("images: %s", {k: len(v) for k, v in pixels.items()})
    weights = (
        balanced_class_weights(labels["train"], len(names))
        if cfg.class_balance == "weighted_loss"
        else None
    )
    started = time.perf_counter()
    (task, result), record = (fit_model or _fit_by_recipe)(
        cfg,
        partial(
            build_task,
            cfg.model,
            len(names),
            cfg.in_chans,
            drop_rate=cfg.drop_rate,
            class_weights=weights,
        ),
        partial(_fit, cfg, n_classes=len(names)),
        pixels,
        labels,
        len(names),
        out_dir / "run",
    )
    train_seconds = time.perf_counter() - started

    predict = partial(predict_logits, task, tta=cfg.tta, hflip=cfg.augment.hflip)
    val_logits = predict(pixels["val"])
    calibration = _calibrate(cfg, val_logits, ids[splits["val"]], names, positive)
    scored = "test" if "test" in pixels else "val"
    scored_logits = val_logits if scored == "val" else predict(pixels[scored])
    metrics, metric_classes = split_metrics(
        scored_logits, ids[splits[scored]], calibration, names, scored
    )
    metrics.update(
        {
            f"val_{k}": v
            for k, v in _metrics(val_logits, ids[splits["val"]], calibration).items()
            if k in ("auc", "ece", "ece_uncalibrated")
        }
    )
    metrics.update(
        {
            "train_seconds": round(train_seconds, 1),
            "n_train": len(labels["train"]),
        }
    )
    scored_set = (scored_logits, ids[splits[scored]], scored)
    manifest = {
        **label_semantics(names, calibration, metric_classes),
        MANIFEST_KEY: report.as_dict(),
        **record,
        **({"input": input_choice.as_dict()} if input_choice is not None else {}),
    }
    artifact = _write(
        cfg, out_dir, task, names, calibration, metrics, manifest, source, scored_set, result
    )
    report.log(log)
    return artifact


def _fit_by_recipe(cfg, build, finetune, pixels, labels, n_classes, run_dir):
    """The default `FitModel`: `cfg.recipe` (`auto` chooses), recorded as the manifest's `recipe`.

    With `cfg.adapter` the recipe is `finetune` through the adapter: `auto` weighs no recipe
    then, since an adapter is asked for its size (a base shared, a small artifact), not its score.
    """
    if cfg.adapter is not None:
        cfg = cfg.model_copy(update={"recipe": "finetune"})
        build = _adapted(build, cfg.adapter)
    fitted, choice = fit_by_recipe(cfg, build, finetune, pixels, labels, n_classes, run_dir)
    if cfg.adapter is not None:
        choice.reason = f"adapter.method={cfg.adapter.method}: fine-tuned through the adapter"
    return fitted, {RECIPE_KEY: choice.as_dict()}


def _adapted(build: Callable[[], ImagingTask], adapter) -> Callable[[], ImagingTask]:
    from medical_imaging.lora import adapt

    return lambda: adapt(build(), adapter)


def _fit(
    cfg: MedicalImagingConfig,
    task: ImagingTask,
    pixels: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    run_dir: Path,
    *,
    n_classes: int,
) -> TrainResult:
    """Fits `task` on the training pixels with the shared loop, scored on validation each epoch.

    A task whose backbone carries an adapter trains behind `shared.adapters.training_view`: the
    adapter, its norm layers and the head at `trainer.lr`, the base frozen throughout.
    """
    sampler = (
        balanced_sampler(labels["train"], cfg.trainer.seed)
        if cfg.class_balance == "sampler"
        else None
    )
    collate = partial(
        collate_indices,
        pixels=pixels["train"],
        labels=labels["train"],
        augment=build_augment(cfg.augment),
    )
    return fit(
        training_view(task) if is_adapted(task.backbone) else task,
        list(range(len(labels["train"]))),
        collate,
        cfg.trainer,
        run_dir,
        evaluator=validation_evaluator(pixels["val"], labels["val"], n_classes),
        sampler=sampler,
    )


def balanced_sampler(labels: torch.Tensor, seed: int) -> WeightedRandomSampler:
    """Draws each class equally often (with replacement), one epoch = len(labels) draws."""
    counts = torch.bincount(labels).clamp(min=1).double()
    return WeightedRandomSampler(
        (1.0 / counts)[labels],
        num_samples=len(labels),
        replacement=True,
        generator=torch.Generator().manual_seed(seed),
    )


def collate_indices(
    indices: list[int], *, pixels: torch.Tensor, labels: torch.Tensor, augment
) -> dict:
    """A training batch: augmented float pixels (B, C, H, W) in [0, 1] and labels (B,)."""
    images = [pixels[i].float() for i in indices]
    if augment is not None:
        images = [augment(image) for image in images]
    return {"pixels": torch.stack(images), "labels": labels[indices]}


def validation_evaluator(
    pixels: torch.Tensor, labels: torch.Tensor, n_classes: int
) -> MetricsEvaluator:
    """Scores the validation images after each epoch: loss (NLL), accuracy and AUC.

    The primary metric is `auc`; when a class is missing from validation, AUC is undefined
    (`shared.evaluation.roc_auc` gives None) and the best epoch is the one with the highest
    `accuracy` instead.
    """
    present = len(np.unique(labels.numpy()))
    has_auc = present >= 2 and (n_classes == 2 or present == n_classes)
    if not has_auc:
        log.warning("a class is missing from validation: AUC is undefined, monitoring accuracy")
    fn = partial(_validation_metrics, pixels=pixels, labels=labels)
    return MetricsEvaluator(fn, primary_metric="auc" if has_auc else "accuracy")


def _validation_metrics(
    task: ImagingTask, *, pixels: torch.Tensor, labels: torch.Tensor
) -> dict[str, float]:
    task = getattr(task, "task", task)  # an adapter's training view holds the task
    logits = predict_logits(task, pixels)
    out = heldout_metrics(
        logits, labels.numpy(), temperature=1.0, threshold=None, positive_index=None
    )
    metrics = {"loss": out["nll"], "accuracy": out["accuracy"]}
    if "auc" in out:
        metrics["auc"] = out["auc"]
    return metrics


def _calibrate(
    cfg: MedicalImagingConfig,
    logits: np.ndarray,
    y: np.ndarray,
    names: list[str],
    positive: int | None,
) -> dict:
    small = warn_if_small(y, names)
    if cfg.calibration.temperature:
        decision = choose_temperature(logits, y, seed=cfg.trainer.seed)
    else:
        decision = {"temperature": 1.0, "kept": False, "reason": "calibration.temperature=false"}
    temperature = decision["temperature"]
    threshold = None
    if positive is not None:
        scores = softmax(logits, temperature)[:, positive]
        threshold = choose_threshold(
            scores,
            y == positive,
            cfg.calibration.threshold_method,
            cfg.calibration.target_sensitivity,
        )
    log.info(
        "calibration: temperature %.3f (%s), threshold %s",
        temperature,
        decision["reason"],
        threshold,
    )
    return {
        "temperature": temperature,
        "threshold": threshold,
        "positive_label": None if positive is None else names[positive],
        "positive_index": positive,
        "method": cfg.calibration.threshold_method,
        "target_sensitivity": cfg.calibration.target_sensitivity,
        "low_confidence_margin": cfg.calibration.low_confidence_margin,
        "fitted_on": "validation",
        "temperature_decision": decision,
        "small_validation_warning": small,
    }


def _metrics(logits: np.ndarray, y: np.ndarray, calibration: dict) -> dict[str, float]:
    return heldout_metrics(
        logits,
        y,
        temperature=calibration["temperature"],
        threshold=calibration["threshold"],
        positive_index=calibration["positive_index"],
    )


def _write(
    cfg,
    out_dir: Path,
    task: ImagingTask,
    names: list[str],
    calibration: dict,
    metrics: dict,
    manifest: dict,
    source: ImageSource,
    scored: tuple[np.ndarray, np.ndarray, str],
    training: TrainResult | None,
) -> Path:
    """Writes the artifact; `manifest` holds further manifest keys (the label semantics and the
    data report)."""
    from medical_imaging import lora

    logits, y, split = scored
    probs = softmax(logits, calibration["temperature"])
    predicted = decide(probs, calibration["threshold"], calibration["positive_index"])
    adapted = is_adapted(task.backbone)
    if adapted:  # no timm-format file: the `timm` section comes with `lora-merge`
        formats, layout = (
            [lora.peft_format(cfg.model)],
            {lora.MANIFEST_KEY: lora.section(task, cfg.model)},
        )
    else:
        formats, layout = [TIMM_USAGE], {"timm": timm_summary(task, cfg.image_size)}
    with write_artifact(
        out_dir / "artifact",
        vertical="medical_imaging",
        model_name=cfg.model,
        config=cfg.model_dump(mode="json"),
        metrics=metrics,
        label_map=names,
        data_fingerprint=source.fingerprint(),
        training=training,
        extra={
            "metrics_split": split,
            **layout,
            "formats": formats,
            **manifest,
        },
    ) as tmp:
        task.to("cpu")
        if adapted:  # the adapter and the head only; the base comes back by its name and hash
            lora.write_adapter(tmp, task, cfg.model)
        else:
            save_timm(task, tmp, names, cfg.image_size)  # model.safetensors, config.json
        save_json(tmp / "calibration.json", calibration)
        plot_confusion_matrix(y, predicted, names, tmp / f"confusion_{split}.png")
    log.info("artifact written to %s; %s metrics %s", out_dir / "artifact", split, metrics)
    return out_dir / "artifact"
