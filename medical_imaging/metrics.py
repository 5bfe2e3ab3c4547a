"""Batched inference over a pixel tensor and the held-out metrics the vertical reports."""

from __future__ import annotations

import numpy as np
import torch

from medical_imaging.calibration import operating_point
from medical_imaging.labels import metric_suffix
from medical_imaging.model import ImagingTask
from medical_imaging.transforms import tta_views
from shared.calibration import softmax
from shared.evaluation import expected_calibration_error, roc_auc


def predict_logits(
    task: ImagingTask,
    pixels: torch.Tensor,
    *,
    batch_size: int = 128,
    tta: bool = False,
    hflip: bool = False,
) -> np.ndarray:
    """(N, C, H, W) pixels -> (N, n_classes) logits, on the task's device; TTA averages logits."""
    device = next(task.parameters()).device
    was_training = task.training
    task.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            batch = pixels[start : start + batch_size].to(device).float()
            views = tta_views(batch, hflip) if tta else [batch]
            out.append(torch.stack([task.logits(v).float() for v in views]).mean(0).cpu())
    task.train(was_training)
    return (
        torch.cat(out).numpy()
        if out
        else np.zeros((0, task.head[-1].out_features), dtype=np.float32)
    )


def heldout_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    temperature: float,
    threshold: float | None,
    positive_index: int | None,
) -> dict[str, float]:
    """AUC, accuracy, sensitivity/specificity at the threshold, and ECE before and after calibration.

    For a binary task, `accuracy`, `sensitivity` and `specificity` use the stored threshold on the
    calibrated positive-class probability; otherwise accuracy is the argmax accuracy.
    """
    labels = np.asarray(labels)
    raw, calibrated = softmax(logits), softmax(logits, temperature)
    out: dict[str, float] = {"n": float(len(labels))}
    auc = roc_auc(labels, calibrated)
    if auc is not None:
        out["auc"] = auc
    out["accuracy_argmax"] = float((calibrated.argmax(1) == labels).mean())
    out["ece_uncalibrated"] = expected_calibration_error(labels, raw)
    out["ece"] = expected_calibration_error(labels, calibrated)
    out["nll_uncalibrated"] = _nll(raw, labels)
    out["nll"] = _nll(calibrated, labels)
    if positive_index is not None and threshold is not None:
        out.update(
            operating_point(calibrated[:, positive_index], labels == positive_index, threshold)
        )
    else:
        out["accuracy"] = out["accuracy_argmax"]
    return out


CLASS_METRICS = ("sensitivity", "specificity")
"""Metrics of a binary task that belong to its positive class (the manifest names it)."""


def split_metrics(
    logits: np.ndarray, labels: np.ndarray, calibration: dict, names: list[str], split: str
) -> tuple[dict[str, float], dict[str, str]]:
    """The manifest's metrics of one split, and the class each class-dependent one is about.

    Keys are `<split>_<metric>`; a class's metric carries the class in its key too:
    `test_sensitivity_malignant`, `test_specificity_malignant` (binary: the positive class, so
    specificity is the share of the other class called the other class) and `test_auc_<class>`
    (multi-class: one-vs-rest beside the macro `test_auc`).
    """
    positive = calibration["positive_index"]
    raw = heldout_metrics(
        logits,
        labels,
        temperature=calibration["temperature"],
        threshold=calibration["threshold"],
        positive_index=positive,
    )
    out, classes = {}, {}
    for name, value in raw.items():
        key = f"{split}_{name}"
        if name in CLASS_METRICS:
            key = f"{key}_{metric_suffix(names[positive])}"
            classes[key] = names[positive]
        out[key] = value
    if positive is None:
        probs = softmax(logits, calibration["temperature"])
        for name, auc in per_class_auc(probs, np.asarray(labels), names).items():
            key = f"{split}_auc_{metric_suffix(name)}"
            out[key], classes[key] = auc, name
    return out, classes


def per_class_auc(probs: np.ndarray, y_true: np.ndarray, labels: list[str]) -> dict[str, float]:
    """One-vs-rest ROC-AUC of each class present among others in `y_true`."""
    out = {}
    for c, name in enumerate(labels):
        scores = probs[:, c]
        auc = roc_auc((y_true == c).astype(int), np.stack([1 - scores, scores], axis=1))
        if auc is not None:
            out[name] = auc
    return out


def _nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def decide(probs: np.ndarray, threshold: float | None, positive_index: int | None) -> np.ndarray:
    """(N,) predicted class ids: the positive class when its probability reaches the threshold
    (binary with an operating threshold), else the most probable class."""
    probs = np.asarray(probs)
    if positive_index is None or threshold is None:
        return probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    return np.where(probs[:, positive_index] >= threshold, positive_index, 1 - positive_index)


def brier_score(probs: np.ndarray, labels: np.ndarray, positive_index: int | None) -> float:
    """Brier score: of the positive class's probability (binary), else the multi-class one
    (squared errors summed over the classes, averaged over the images)."""
    from sklearn.metrics import brier_score_loss

    labels = np.asarray(labels)
    if not len(labels):
        return float("nan")
    if positive_index is not None:
        return float(
            brier_score_loss((labels == positive_index).astype(int), probs[:, positive_index])
        )
    return float(brier_score_loss(labels, probs, labels=list(range(probs.shape[1]))))
