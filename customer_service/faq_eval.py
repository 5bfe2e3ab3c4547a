"""`verticals evaluate customer_service --data D`: the bot on labelled questions, as a report.

Each question is asked in a fresh session, as a customer would ask it, and scored twice: the
bot's reply (answered right, answered wrong, or handed off), and the retrieval underneath it
(the rank of the right answer among the KB's answers, for Recall@K and MRR). A data folder's
`out_of_scope` questions, when it has them, measure the other side of the handoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import DataError
from shared.evaluation import retrieval_metrics
from shared.reports import EvaluationReport, plot_at_k

HANDOFF = "handoff"  # the pseudo-class of a handed-off question in the confusion matrix
KS = (1, 5, 10)
DESCRIPTIONS = {
    "accuracy": "answered right / all questions; a handoff counts as a miss",
    "answered_accuracy": "answered right / answered questions (handoffs left out)",
    "decision_accuracy": "right answer chosen / all questions, whether or not the bot then "
    "handed off (what a handoff would have said)",
    "handoff_rate": "handed off / all in-scope questions",
    "coverage": "answered / all in-scope questions (1 - handoff_rate)",
    "n_questions": "labelled in-scope questions, each asked in a fresh session",
    "n_answered": "questions the bot answered (no handoff)",
    "n_handoff": "questions the bot handed to a person",
    "mrr": "mean reciprocal rank of the right answer among the KB answers (retrieval alone)",
    "n_out_of_scope": "out-of-scope questions (out_of_scope table of the data folder)",
    "oos_handoff_recall": "out-of-scope questions handed off / all out-of-scope questions",
}
for _k in KS:
    DESCRIPTIONS[f"recall_at_{_k}"] = f"the right answer among the top {_k} retrieved answers"


def _questions(data_path: Path, config: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled pairs (`question, answer_id|intent`) and any out-of-scope questions, read
    with the artifact's `columns` and `label_map` (the names the bot was trained with)."""
    from customer_service.schemas import OOS_SCHEMA, PAIRS_SCHEMA
    from shared.data import find_table, load_table

    columns = (config or {}).get("columns") or None
    label_map = (config or {}).get("label_map") or None
    path = Path(data_path)
    oos = pd.DataFrame(columns=["question"])
    if path.is_dir():
        if (oos_path := find_table(path, "out_of_scope", required=False)) is not None:
            oos = load_table(oos_path, OOS_SCHEMA, columns=columns)
        path = find_table(path, "pairs")
    pairs = load_table(path, PAIRS_SCHEMA, columns=columns, label_map=label_map)
    for col in ("answer_id", "intent"):
        pairs[col] = pairs[col].fillna("").astype(str) if col in pairs.columns else ""
    empty = pairs.index[(pairs["answer_id"] == "") & (pairs["intent"] == "")]
    if len(empty):
        raise DataError(f"{path}: row {empty[0] + 1}: needs an answer_id or an intent")
    return pairs, oos


def _rank(results: Sequence[dict[str, Any]], answer_id: str, intent: str) -> float:
    """1-based rank of the first retrieved answer that is right (by id, else by intent); inf if none."""
    for i, r in enumerate(results):
        if (answer_id and r["answer_id"] == answer_id) or (
            not answer_id and intent and r.get("intent") == intent
        ):
            return float(i + 1)
    return float("inf")


def _right(out: dict[str, Any], answer_id: str, intent: str) -> bool:
    """Intent match when both sides have one (several answers may serve an intent), else id match."""
    if intent and out.get("intent"):
        return out["intent"] == intent
    return bool(answer_id) and out.get("answer_id") == answer_id


def _label(out: dict[str, Any]) -> str:
    """The class of a reply: `handoff`, else its intent, else its answer id."""
    if out["handoff"]:
        return HANDOFF
    return str(out.get("intent") or out.get("answer_id") or "(no answer)")


def score_questions(runtime: Any, pairs: pd.DataFrame, depth: int = max(KS)) -> pd.DataFrame:
    """One row per question: expected, predicted, confidence, handoff, right, retrieval rank.

    `runtime` needs `chat(session_id, message)` and `search(query, k)` (a `CustomerServiceBot`).
    """
    rows = []
    for i, (question, answer_id, intent) in enumerate(
        zip(pairs["question"], pairs["answer_id"], pairs["intent"], strict=True)
    ):
        question = str(question)
        out = runtime.chat(f"eval-{i}", question)
        ranked = runtime.search(question, k=depth)["results"]
        rows.append(
            {
                "input": question,
                "expected": intent or answer_id,
                "predicted": _label(out),
                "chosen": out.get("intent") or out.get("answer_id"),
                "confidence": out["confidence"],
                "handoff": bool(out["handoff"]),
                "handoff_reason": out.get("handoff_reason"),
                "right": _right(out, answer_id, intent),
                "rank": _rank(ranked, answer_id, intent),
            }
        )
    return pd.DataFrame(rows)


def summarise(scored: pd.DataFrame, oos_handed: Sequence[bool] = ()) -> dict[str, float | int]:
    """The named metrics of `DESCRIPTIONS` from `score_questions` rows (and OOS handoffs)."""
    n = len(scored)
    handed = scored["handoff"].to_numpy(bool) if n else np.zeros(0, bool)
    right = scored["right"].to_numpy(bool) if n else np.zeros(0, bool)
    answered = int((~handed).sum())
    metrics: dict[str, float | int] = {
        "accuracy": float((right & ~handed).mean()) if n else 0.0,
        "answered_accuracy": float((right & ~handed).sum() / answered) if answered else 0.0,
        "decision_accuracy": float(right.mean()) if n else 0.0,
        "handoff_rate": float(handed.mean()) if n else 0.0,
        "coverage": float(answered / n) if n else 0.0,
        "n_questions": n,
        "n_answered": answered,
        "n_handoff": int(handed.sum()),
    }
    ranks = retrieval_metrics(scored["rank"].to_numpy(float) if n else [], ks=KS)
    metrics.update({k: v for k, v in ranks.items() if not k.startswith("ndcg")})
    if len(oos_handed):
        metrics["n_out_of_scope"] = len(oos_handed)
        metrics["oos_handoff_recall"] = float(np.mean(oos_handed))
    return metrics


def evaluate_runtime(runtime: Any, data_path: Path) -> EvaluationReport:
    """The report of `verticals evaluate customer_service --data D` (a folder or a pairs file).

    Its primary metric is `accuracy` with a handoff counted as a miss; `labels`/`y_true`/`y_pred`
    run over the intents (or answer ids) plus a `handoff` class, so the confusion matrix shows
    both wrong answers and handoffs (and out-of-scope questions, whose true class is `handoff`).
    """
    manifest = getattr(runtime, "manifest", None) or {}
    pairs, oos = _questions(Path(data_path), manifest.get("config"))
    scored = score_questions(runtime, pairs)
    oos_out = [runtime.chat(f"eval-oos-{i}", str(q)) for i, q in enumerate(oos["question"])]
    oos_handed = [bool(o["handoff"]) for o in oos_out]
    metrics = summarise(scored, oos_handed)
    expected = list(scored["expected"]) + [HANDOFF] * len(oos_out)
    predicted = list(scored["predicted"]) + [_label(o) for o in oos_out]
    labels = sorted(set(expected + predicted) - {HANDOFF}) + [HANDOFF]
    code = {name: i for i, name in enumerate(labels)}
    errors = scored[~(scored["right"] & ~scored["handoff"])].drop(columns=["right"])
    errors = errors.replace({np.inf: None}).to_dict(orient="records")
    errors += [
        {
            "input": str(q),
            "expected": HANDOFF,
            "predicted": _label(o),
            "confidence": o["confidence"],
            "handoff": False,
        }
        for q, o in zip(oos["question"], oos_out, strict=True)
        if not o["handoff"]
    ]
    curves = {"recall": {k: metrics[f"recall_at_{k}"] for k in KS}}
    return EvaluationReport(
        metrics=metrics,
        descriptions={k: v for k, v in DESCRIPTIONS.items() if k in metrics},
        labels=labels,
        y_true=[code[e] for e in expected],
        y_pred=[code[p] for p in predicted],
        errors=errors,
        plots={
            "retrieval_at_k": lambda path: plot_at_k(
                curves, path, f"Retrieval of the right answer at K (n={len(scored)})"
            )
        },
        primary="accuracy",
    )
