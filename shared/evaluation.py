"""Evaluation callables: classification, calibration, retrieval and ranking metrics.

scikit-learn computes what it can (report, confusion matrix, ROC-AUC); expected calibration error
and the rank metrics over a single relevant item are computed here in a few vectorised lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """Accuracy, macro/weighted P/R/F1, per-class figures, ROC-AUC and ECE from class probabilities.

    Args:
        y_true: (N,) integer class ids.
        probs: (N, C) class probabilities.
        labels: Class names, for the per-class rows.

    Returns:
        A flat dict of floats (`accuracy`, `macro_f1`, `roc_auc`, `ece`, ...) plus `report`,
        the text classification report.
    """
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        precision_recall_fscore_support,
    )

    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    n_classes = probs.shape[1]
    names = list(labels) if labels is not None else [str(i) for i in range(n_classes)]
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=range(n_classes), average=avg, zero_division=0
        )
        out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=range(n_classes), zero_division=0
    )
    for i, name in enumerate(names):
        out.update(
            {
                f"{name}/precision": float(p[i]),
                f"{name}/recall": float(r[i]),
                f"{name}/f1": float(f[i]),
            }
        )
    auc = roc_auc(y_true, probs)
    if auc is not None:
        out["roc_auc"] = auc
    out["ece"] = expected_calibration_error(y_true, probs)
    out["report"] = classification_report(
        y_true, y_pred, labels=range(n_classes), target_names=names, zero_division=0
    )
    return out


def roc_auc(y_true: Sequence[int], probs: np.ndarray) -> float | None:
    """Binary ROC-AUC on the positive class, or macro one-vs-rest; None if a class is absent."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    present = np.unique(y_true)
    if len(present) < 2:
        return None
    if probs.shape[1] == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    if len(present) < probs.shape[1]:
        return None
    return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro"))


def expected_calibration_error(y_true: Sequence[int], probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the confidence-weighted gap between confidence and accuracy over equal-width bins."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.clip((confidence * n_bins).astype(int), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def plot_confusion_matrix(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    labels: Sequence[str],
    path: str | Path,
    counts: bool = False,
) -> Path:
    """Writes the confusion matrix as a PNG (rows: true class, columns: predicted).

    Row-normalised by default; with `counts`, the number of examples in every cell, a colour
    bar and `n` in the title (the evaluation report's version).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.5, 0.45 * len(labels) + 2) if counts else max(4.0, 0.35 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=list(range(len(labels))),
        display_labels=list(labels),
        normalize=None if counts else "true",
        ax=ax,
        colorbar=counts,
        values_format="d" if counts else (".2f" if len(labels) <= 12 else None),
        include_values=len(labels) <= (80 if counts else 12),
        xticks_rotation="vertical",
        cmap="Blues" if counts else "viridis",
        # counts: a square-root colour scale, so one large cell does not wash out the rest
        im_kw={"norm": matplotlib.colors.PowerNorm(gamma=0.5)} if counts else None,
    )
    if counts:
        ax.set_title(f"Confusion matrix (counts, n={len(y_true)})")
        for text in display.text_.ravel() if display.text_ is not None else []:
            if (
                text.get_text() == "0"
            ):  # empty cells stay blank, so the counts that matter stand out
                text.set_text("")
            elif len(labels) > 12:
                text.set_fontsize(max(5, 11 - len(labels) // 8))
    fig.tight_layout()
    fig.savefig(path, dpi=110 if counts else 100)
    plt.close(fig)
    return Path(path)


def rank_of_target(scores: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """1-based rank of each row's target column in descending score order.

    Ties count against the target: a candidate scoring exactly as the target ranks above it, so a
    model that scores everything alike gets the worst rank, not the best. A target whose score is
    NaN ranks last.

    Args:
        scores: (N, M) scores of N queries against M candidates.
        targets: (N,) the relevant candidate's column for each query.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    ranks = (scores >= target_scores).sum(axis=1)
    return np.where(np.isnan(target_scores[:, 0]), scores.shape[1], ranks)


def retrieval_metrics(ranks: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@K, NDCG@K and MRR for queries with one relevant item, from its 1-based ranks.

    A query whose relevant item was not retrieved at all should be passed a rank of `inf`.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {"mrr": float(np.mean(1.0 / ranks)) if len(ranks) else 0.0}
    for k in ks:
        hit = ranks <= k
        out[f"recall_at_{k}"] = float(hit.mean()) if len(ranks) else 0.0
        out[f"ndcg_at_{k}"] = (
            float(np.where(hit, 1.0 / np.log2(ranks + 1), 0.0).mean()) if len(ranks) else 0.0
        )
    return out


def ranks_from_topk(topk_ids: np.ndarray, targets: Sequence[Any]) -> np.ndarray:
    """1-based rank of each target within its row of retrieved ids; `inf` when absent."""
    ranks = np.full(len(targets), np.inf)
    for i, (row, target) in enumerate(zip(topk_ids, targets, strict=True)):
        hits = np.flatnonzero(np.asarray(row) == target)
        if len(hits):
            ranks[i] = hits[0] + 1
    return ranks
