"""Calibration on validation data only: whether to keep a temperature (`shared.calibration`
fits it), and the operating threshold.

A temperature fitted on a few dozen images can make calibration worse on new ones (a separable
validation set drives it below 1), so it is kept only when it lowers the validation NLL under
k-fold cross-validation, and a small validation set is named in a warning.
"""

from __future__ import annotations

import logging

import numpy as np

from shared.calibration import fit_temperature, softmax

log = logging.getLogger(__name__)

TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The fitted temperature is kept in this range: a small, separable validation set would
otherwise drive it towards 0 and every probability to 0 or 1."""

SMALL_VALIDATION = (100, 30)
"""Fewer validation images than this in all, or than this in some class, is a small validation
set: its temperature and threshold are uncertain, and training says so."""

CV_FOLDS = 5


def choose_temperature(
    logits: np.ndarray, labels: np.ndarray, folds: int = CV_FOLDS, seed: int = 0
) -> dict:
    """The temperature to keep, and why: the fitted one only if it beats T = 1 out of fold.

    For each of `folds` folds of the validation rows (stratified when every class has enough
    rows), T is fitted on the other folds and the NLL of the held-out fold is measured with it
    and with T = 1. When the mean held-out NLL with the fitted T is lower, T fitted on all the
    validation rows is kept; otherwise T = 1.

    Args:
        logits: (N, C) uncalibrated validation logits.
        labels: (N,) their class ids.

    Returns:
        `temperature` (the one to use), `fitted_temperature` (on all rows), `kept`,
        `cv_nll_fitted`, `cv_nll_uncalibrated`, `cv_folds` and `n_val`.
    """
    labels = np.asarray(labels)
    fitted = fit_temperature(logits, labels, bounds=TEMPERATURE_BOUNDS)
    out = {"fitted_temperature": fitted, "n_val": int(len(labels)), "cv_folds": 0}
    splits = _folds(labels, folds, seed)
    if not splits:
        return out | {
            "temperature": 1.0,
            "kept": False,
            "cv_nll_fitted": None,
            "cv_nll_uncalibrated": None,
            "reason": "too few validation images to cross-validate the temperature",
        }
    with_t, without_t = [], []
    for train, held in splits:
        t = fit_temperature(logits[train], labels[train], bounds=TEMPERATURE_BOUNDS)
        with_t.append(_nll_sum(logits[held], labels[held], t))
        without_t.append(_nll_sum(logits[held], labels[held], 1.0))
    cv_fitted, cv_one = sum(with_t) / len(labels), sum(without_t) / len(labels)
    kept = cv_fitted < cv_one
    return out | {
        "temperature": fitted if kept else 1.0,
        "kept": bool(kept),
        "cv_folds": len(splits),
        "cv_nll_fitted": float(cv_fitted),
        "cv_nll_uncalibrated": float(cv_one),
        "reason": (
            f"cross-validated NLL {cv_fitted:.4f} with T fitted vs {cv_one:.4f} with T = 1: "
            + ("kept" if kept else "not kept (it would not generalise)")
        ),
    }


def _folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold splits of the validation rows; none when there are fewer than 2 rows per fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    k = min(folds, len(labels) // 2)
    if k < 2:
        return []
    counts = np.bincount(labels)
    stratify = counts[counts > 0].min() >= k
    splitter = (StratifiedKFold if stratify else KFold)(k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def _nll_sum(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(probs, 1e-12, 1.0)).sum())


def warn_if_small(labels: np.ndarray, names: list[str]) -> str | None:
    """Logs (and returns) a warning naming the validation size when it is small, else None."""
    counts = np.bincount(np.asarray(labels), minlength=len(names))
    fewest = int(np.argmin(counts))
    total, per_class = SMALL_VALIDATION
    if len(labels) >= total and counts[fewest] >= per_class:
        return None
    message = (
        f"validation has {len(labels)} images ({counts[fewest]} of {names[fewest]!r}, the fewest "
        f"per class); under {total} images or {per_class} per class, the temperature and the "
        "threshold fitted on it are uncertain. Hold out more (val_fraction, or more 'val' rows)"
    )
    log.warning(message)
    return message


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
