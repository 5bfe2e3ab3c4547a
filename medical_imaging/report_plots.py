"""The imaging report's own figure: ROC curves with the artifact's operating point."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_roc(
    y_true: Sequence[int],
    probs: np.ndarray,
    labels: Sequence[str],
    positive_index: int | None,
    threshold: float | None,
    path: str | Path,
) -> Path:
    """ROC curve(s) as a PNG: the positive class for a binary task, with the operating point the
    stored threshold gives; one-vs-rest per class otherwise. Classes absent from `y_true` (or
    present alone) have no curve, and the title says so.

    Args:
        y_true: (N,) true class ids.
        probs: (N, C) calibrated class probabilities.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true = np.asarray(y_true)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    classes = [positive_index] if positive_index is not None else list(range(len(labels)))
    aucs, skipped = _draw_curves(ax, y_true, probs, labels, classes)
    if positive_index is not None and threshold is not None and not skipped:
        called = probs[:, positive_index] >= threshold
        truth = y_true == positive_index
        tpr, fpr = called[truth].mean(), called[~truth].mean()
        ax.plot(
            fpr,
            tpr,
            "o",
            color="red",
            markersize=8,
            label=f"threshold {threshold:.3f}: sens {tpr:.2f}, spec {1 - fpr:.2f}",
        )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    if positive_index is not None:
        title = f"ROC: {labels[positive_index]!r} vs the rest (n={len(y_true)})"
    else:
        title = f"ROC: one-vs-rest per class (n={len(y_true)})"
        title += f", macro AUC {np.mean(aucs):.3f}" if aucs and not skipped else ""
    if skipped:
        title += f"\nno curve for {', '.join(skipped)} (one class only)"
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="false positive rate (1 - specificity)",
        ylabel="true positive rate (sensitivity)",
        title=title,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _draw_curves(ax, y_true, probs, labels, classes) -> tuple[list[float], list[str]]:
    """One ROC curve per class in `classes` (one-vs-rest); returns their AUCs and the classes
    that could have none (all or none of the images belong to them)."""
    from sklearn.metrics import RocCurveDisplay

    aucs, skipped = [], []
    for c in classes:
        truth = (y_true == c).astype(int)
        if truth.min(initial=1) == truth.max(initial=0):
            skipped.append(labels[c])
            continue
        display = RocCurveDisplay.from_predictions(
            truth,
            probs[:, c],
            ax=ax,
            name=f"{labels[c]} (n={int(truth.sum())})",
            plot_chance_level=False,
        )
        aucs.append(float(display.roc_auc))
    return aucs, skipped
