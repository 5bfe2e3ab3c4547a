"""`verticals evaluate finance_sentiment`: the sentiment classifier's report on a labelled table.

The report (see `shared.reports`) names each metric, holds the per-class report and confusion
matrix inputs, one error row per miss (most confident misses first) and a reliability diagram.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared.reports import EvaluationReport, plot_reliability

from .schemas import SENTIMENTS

DESCRIPTIONS = {
    "accuracy": "texts whose predicted sentiment is the labelled one / all texts",
    "macro_f1": "F1 per sentiment class, averaged with equal weight (the primary metric)",
    "weighted_f1": "F1 per sentiment class, averaged by class support",
    "ece": "expected calibration error of the top-class probability (15 bins; 0 is perfect)",
    "roc_auc": "one-vs-rest ROC-AUC of the class probabilities, macro-averaged",
    "topic_accuracy": "texts whose predicted topic is the labelled one / texts with a topic",
    "score_mse": "mean squared error of the score against the gold `score` column",
    "score_r2": "R^2 of the score against the gold `score` (1 is perfect, 0 the gold mean's)",
    "score_pearson": "Pearson correlation of the score with the gold `score`",
    "score_sign_accuracy": "rows with a nonzero gold score whose score has its sign / such rows",
    "n_test": "labelled texts evaluated",
    "n_errors": "texts whose predicted sentiment is wrong (rows of errors.csv)",
}


def evaluate(runtime, data_path: Path) -> EvaluationReport:
    """Scores every row of a labelled table (`text`, `sentiment`, optional `topic`, `id`).

    Raises:
        DataError: when the table is missing or does not match the labelled schema.
    """
    from shared.evaluation import classification_metrics

    from .training import load_labelled

    df = load_labelled(Path(data_path), runtime.cfg).reset_index(drop=True)  # the user's names
    results = runtime.predict(df.to_dict(orient="records"))
    labels = list(SENTIMENTS)
    probs = np.array([[r["probs"][name] for name in labels] for r in results], dtype=np.float64)
    y_true = df["sentiment"].map(labels.index).to_numpy()
    y_pred = probs.argmax(axis=1)
    full = classification_metrics(y_true, probs, labels)
    metrics: dict[str, float | int] = {
        name: float(full[name])
        for name in ("accuracy", "macro_f1", "weighted_f1", "ece", "roc_auc")
        if name in full
    }
    topics = _topic_accuracy(df, results)
    if topics is not None:
        metrics["topic_accuracy"] = topics
    if "score" in df.columns and df["score"].notna().any():
        from .score_head import score_metrics

        predicted = np.array([r["score"] for r in results], dtype=np.float64)
        metrics.update(score_metrics(predicted, df["score"].to_numpy(dtype=np.float64)))
    errors = _errors(df, results, y_true, y_pred, probs, labels)
    metrics.update({"n_test": int(len(df)), "n_errors": len(errors)})
    confidence, correct = probs.max(axis=1), y_pred == y_true
    return EvaluationReport(
        metrics=metrics,
        descriptions={k: v for k, v in DESCRIPTIONS.items() if k in metrics},
        labels=labels,
        y_true=y_true.tolist(),
        y_pred=y_pred.tolist(),
        errors=errors,
        plots={"reliability": lambda path: plot_reliability(confidence, correct, path)},
        primary="macro_f1",
    )


def _topic_accuracy(df, results: list[dict[str, Any]]) -> float | None:
    """Share of rows with a labelled topic whose predicted topic matches; None when none has one."""
    if "topic" not in df.columns:
        return None
    given = df["topic"].fillna("").astype(str).str.strip()
    rows = [i for i, t in enumerate(given) if t and results[i].get("topic") is not None]
    if not rows:
        return None
    return float(np.mean([results[i]["topic"] == given[i] for i in rows]))


def _errors(df, results, y_true, y_pred, probs, labels) -> list[dict[str, Any]]:
    """One row per miss (input, expected, predicted, confidence, then id/topic), most confident first."""
    rows = []
    for i in np.flatnonzero(y_pred != y_true):
        row: dict[str, Any] = {
            "input": df["text"].iloc[i],
            "expected": labels[int(y_true[i])],
            "predicted": labels[int(y_pred[i])],
            "confidence": round(float(probs[i, y_pred[i]]), 4),
            "p_expected": round(float(probs[i, y_true[i]]), 4),
        }
        if "id" in df.columns:
            row = {"id": df["id"].iloc[i], **row}
        if results[i].get("topic") is not None:
            row["predicted_topic"] = results[i]["topic"]
        rows.append(row)
    return sorted(rows, key=lambda r: -r["confidence"])
