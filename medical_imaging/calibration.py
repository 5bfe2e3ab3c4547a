"""The operating threshold, chosen on validation data only (temperature scaling is in
`shared.calibration`)."""

from __future__ import annotations

import numpy as np

TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The fitted temperature is kept in this range: a small, separable validation set would
otherwise drive it towards 0 and every probability to 0 or 1."""


def choose_threshold(
    scores: np.ndarray,
    positives: np.ndarray,
    method: str = "sensitivity",
    target_sensitivity: float = 0.95,
) -> float:
    """The probability threshold for the positive class, chosen on validation data.

    `sensitivity`: the highest threshold whose sensitivity reaches the target (so specificity is
    as high as that target allows). `youden`: the threshold maximising sensitivity + specificity - 1.
    Falls back to 0.5 when validation data hold only one class.
    """
    from sklearn.metrics import roc_curve

    positives = np.asarray(positives).astype(int)
    if positives.min() == positives.max():
        return 0.5
    fpr, tpr, thresholds = roc_curve(positives, scores)
    thresholds = np.clip(thresholds, 0.0, 1.0)
    if method == "youden":
        return float(thresholds[int(np.argmax(tpr - fpr))])
    reaching = np.flatnonzero(tpr >= target_sensitivity)
    return float(thresholds[reaching[0]])  # roc_curve orders thresholds from high to low


def operating_point(
    scores: np.ndarray, positives: np.ndarray, threshold: float
) -> dict[str, float]:
    """Sensitivity, specificity and accuracy when `score >= threshold` means positive."""
    positives = np.asarray(positives).astype(bool)
    predicted = np.asarray(scores) >= threshold
    tp, tn = np.sum(predicted & positives), np.sum(~predicted & ~positives)
    return {
        "sensitivity": float(tp / max(1, positives.sum())),
        "specificity": float(tn / max(1, (~positives).sum())),
        "accuracy": float((predicted == positives).mean()),
    }
