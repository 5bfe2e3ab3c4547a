"""Temperature scaling and the operating threshold, both fitted on validation data only."""

from __future__ import annotations

import numpy as np
import torch


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The temperature T minimising validation NLL of softmax(logits / T) (Guo et al., 2017).

    Args:
        logits: (N, C) uncalibrated logits.
        labels: (N,) class ids.
    """
    logits_t = torch.as_tensor(logits, dtype=torch.float64)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros(
        1, dtype=torch.float64, requires_grad=True
    )  # optimise log T: T stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_t / log_t.exp(), labels_t)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature, numerically stable."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


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
