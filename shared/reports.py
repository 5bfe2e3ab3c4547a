"""Evaluation reports: what `verticals evaluate` returns and writes, for every vertical.

A vertical's `evaluate` returns an :class:`EvaluationReport`; :func:`write_report` turns it into a
folder a reviewer can open::

    metrics.json               every named metric, plus what each counts (`descriptions`)
    classification_report.txt  per-class precision / recall / F1 / support (classification)
    per_class.csv              the same, as a table
    confusion_matrix.png       counts in every cell, rows = true class
    errors.csv                 input, expected, predicted, confidence of each miss
    <name>.png                 the vertical's own plots (reliability diagram, metrics at K, ...)

and :func:`format_table` prints the metrics as a readable table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PlotFn = Callable[[Path], None]
"""Draws one figure into the PNG path it is given."""


@dataclass
class EvaluationReport:
    """The outcome of evaluating an artifact on labelled data.

    Attributes:
        metrics: Flat named figures (`accuracy`, `recall_at_10`, `n_test`...), floats or ints.
        descriptions: What a metric counts, by name, when the name alone could mislead
            (`"accuracy": "answered right / all questions; a handoff counts as a miss"`).
        labels: Class names, when the task is a classification.
        y_true: (N,) true class ids, for the per-class report and confusion matrix.
        y_pred: (N,) predicted class ids (after the artifact's own threshold or rule).
        errors: One row per miss: at least `input`, `expected`, `predicted`, `confidence`.
        plots: The vertical's own figures, by file stem (`reliability`, `retrieval_at_k`).
        primary: The headline metric's name.
    """

    metrics: dict[str, float | int]
    descriptions: dict[str, str] = field(default_factory=dict)
    labels: list[str] | None = None
    y_true: Sequence[int] | None = None
    y_pred: Sequence[int] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    plots: dict[str, PlotFn] = field(default_factory=dict)
    primary: str | None = None


def write_report(report: EvaluationReport, folder: str | Path) -> Path:
    """Writes the report folder (see the module docstring) and returns it."""
    import pandas as pd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "primary": report.primary,
        "metrics": {k: _plain(v) for k, v in report.metrics.items()},
        "descriptions": report.descriptions,
    }
    if report.labels is not None and report.y_true is not None and report.y_pred is not None:
        per_class = per_class_table(report.y_true, report.y_pred, report.labels)
        per_class.to_csv(folder / "per_class.csv", index=False)
        (folder / "classification_report.txt").write_text(
            _classification_text(report.y_true, report.y_pred, report.labels), encoding="utf-8"
        )
        payload["per_class"] = per_class.to_dict(orient="records")
        plot_confusion_counts(
            report.y_true, report.y_pred, report.labels, folder / "confusion_matrix.png"
        )
    columns = ["input", "expected", "predicted", "confidence"]
    errors = pd.DataFrame(report.errors)
    for name in columns:
        if name not in errors:
            errors[name] = pd.Series(dtype=object)
    errors = errors[columns + [c for c in errors.columns if c not in columns]]
    errors.to_csv(folder / "errors.csv", index=False)
    for stem, draw in report.plots.items():
        draw(folder / f"{stem}.png")
    (folder / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return folder


def format_table(report: EvaluationReport) -> str:
    """The metrics as aligned `name  value  meaning` lines, the primary metric first."""
    names = list(report.metrics)
    if report.primary in report.metrics:
        names.remove(report.primary)
        names.insert(0, report.primary)
    width = max((len(n) for n in names), default=0)
    lines = []
    for name in names:
        text = _value_text(name, report.metrics[name])
        meaning = report.descriptions.get(name, "")
        lines.append(f"{name:<{width}}  {text:>10}  {meaning}".rstrip())
    return "\n".join(lines)


def per_class_table(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]):
    """Per-class precision, recall, F1 and support as a DataFrame (one row per class)."""
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=range(len(labels)), zero_division=0
    )
    return pd.DataFrame(
        {"class": list(labels), "precision": p, "recall": r, "f1": f, "support": s.astype(int)}
    )


def plot_confusion_counts(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str], path: str | Path
) -> Path:
    """The confusion matrix with the count in every cell (rows: true class, columns: predicted)."""
    from shared.evaluation import plot_confusion_matrix

    return plot_confusion_matrix(y_true, y_pred, labels, path, counts=True)


def plot_reliability(
    confidence: Sequence[float], correct: Sequence[bool], path: str | Path, n_bins: int = 10
) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with bin counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    centers = (edges[:-1] + edges[1:]) / 2
    counts = np.bincount(bins, minlength=n_bins)
    acc = np.bincount(bins, weights=correct, minlength=n_bins) / np.maximum(counts, 1)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    shown = counts > 0
    ax.bar(
        centers[shown], acc[shown], width=1 / n_bins, edgecolor="black", alpha=0.7, label="accuracy"
    )
    for x, y, n in zip(centers[shown], acc[shown], counts[shown], strict=True):
        ax.annotate(str(n), (x, y), ha="center", va="bottom", fontsize=8)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"Reliability (n={len(confidence)}; numbers are bin counts)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_at_k(curves: dict[str, dict[int, float]], path: str | Path, title: str) -> Path:
    """Lines of metrics at K (`{"recall": {1: .4, 5: .7}, "ndcg": {...}}`), K on the x-axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, points) in enumerate(curves.items()):
        ks = sorted(points)
        ax.plot(ks, [points[k] for k in ks], marker="o", label=name)
        for (
            k
        ) in ks:  # curves' labels alternate above and below their points, so they do not collide
            ax.annotate(
                f"{points[k]:.3f}",
                (k, points[k]),
                fontsize=7,
                xytext=(2, 4 if i % 2 == 0 else -10),
                textcoords="offset points",
            )
    ax.set(xlabel="K", ylabel="value", ylim=(0, 1.05), title=title)
    ax.set_xticks(sorted({k for points in curves.values() for k in points}))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _classification_text(y_true, y_pred, labels) -> str:
    from sklearn.metrics import classification_report

    return classification_report(
        y_true,
        y_pred,
        labels=range(len(labels)),
        target_names=list(labels),
        zero_division=0,
        digits=4,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _value_text(name: str, value: Any) -> str:
    value = _plain(value)
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int) or name.startswith("n_"):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
