"""Batched inference over a pixel tensor and the held-out metrics the vertical reports."""

from __future__ import annotations

import numpy as np
import torch

from medical_imaging.calibration import operating_point
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
