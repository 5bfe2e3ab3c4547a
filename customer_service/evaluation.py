"""Scoring held-out questions with the trained parts: decisions, metrics and calibration fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from customer_service import retrieval
from customer_service.ood import (
    Calibration,
    fit_in_scope_weights,
    in_scope_probability,
    out_of_fold_in_scope,
)
from customer_service.retrieval import BotTask, Hit, KnowledgeIndex
from customer_service.scoring import Decision, decide, intent_probs
from shared.calibration import fit_temperature
from shared.evaluation import retrieval_metrics

DEPTH = 20  # answers kept per query for the softmax; the rest carry negligible probability


def head_arrays(task: BotTask) -> tuple[np.ndarray, np.ndarray] | None:
    """The intent head's (C, D) weight and (C,) bias as float32 arrays, as an artifact stores them."""
    if task.head is None:
        return None
    return tuple(p.detach().float().cpu().numpy() for p in (task.head.weight, task.head.bias))


def intent_logits(task: BotTask, vectors: np.ndarray) -> np.ndarray | None:
    """(N, C) intent logits from (N, D) embeddings, or None without a head (as the bot computes them)."""
    head = head_arrays(task)
    if head is None or len(vectors) == 0:
        return None
    return retrieval.intent_logits(vectors, *head)


def search_all(
    index: KnowledgeIndex, vectors: np.ndarray, texts: Sequence[str], weight: float
) -> list[list[Hit]]:
    return [
        index.search(v, t, k=DEPTH, bm25_weight=weight) for v, t in zip(vectors, texts, strict=True)
    ]


def is_correct(decision: Decision, answer_id: str, intent: str) -> bool:
    """Intent match when both sides have one (several answers may serve an intent), else answer match."""
    if intent and decision.intent:
        return decision.intent == intent
    return decision.answer_id == answer_id


def choose_bm25_weight(
    index: KnowledgeIndex,
    vectors: np.ndarray,
    questions: Sequence[str],
    targets: Sequence[str],
    weights: Sequence[float],
) -> tuple[float, dict[str, float]]:
    """The BM25 weight with the best validation answer MRR; 0 unless another is strictly better."""
    scores = {}
    for w in [0.0, *weights]:
        hits = search_all(index, vectors, questions, w)
        scores[w] = retrieval_metrics(_ranks(hits, targets))["mrr"]
    best = max(scores, key=lambda w: (scores[w], -w))
    return (best if scores[best] > scores[0.0] else 0.0), {
        f"val_mrr_bm25_{w}": v for w, v in scores.items()
    }


def fit_calibration(
    hits: list[list[Hit]],
    logits: np.ndarray | None,
    answer_ids: Sequence[str],
    intent_ids: Sequence[int],
    calibration: Calibration,
) -> None:
    """Fits both temperatures on validation questions, in place."""
    rows, targets = [], []
    for row_hits, aid in zip(hits, answer_ids, strict=True):
        pos = next((i for i, h in enumerate(row_hits) if h.answer_id == aid), None)
        if pos is not None:
            rows.append([h.score for h in row_hits] + [-np.inf] * (DEPTH - len(row_hits)))
            targets.append(pos)
    if rows:
        calibration.retrieval_temperature = fit_temperature(
            np.array(rows), np.array(targets), init=0.05
        )
    known = np.array([i >= 0 for i in intent_ids], dtype=bool)
    if logits is not None and known.any():
        calibration.intent_temperature = fit_temperature(
            logits[known], np.asarray(intent_ids)[known]
        )


HEAD_WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def fit_intent_fusion(
    hits: list[list[Hit]],
    logits: np.ndarray | None,
    intent_ids: Sequence[int],
    intents: list[str],
    answers: dict[str, dict[str, str]],
    calibration: Calibration,
) -> dict[str, float]:
    """Picks the head weight by validation intent accuracy and fits the fused temperature, in place.

    The head alone (weight 1) is kept unless a fusion with the retrieval vote is strictly better.
    Returns the validation accuracy of each weight tried.
    """
    known = [i for i, y in enumerate(intent_ids) if y >= 0]
    if logits is None or not known:
        return {}
    y = np.asarray(intent_ids)[known]
    calibration.fused_temperature = 1.0
    probs, scores = {}, {}
    for w in HEAD_WEIGHTS:
        probs[w] = np.stack(
            [
                intent_probs(hits[i], logits[i], intents, answers, calibration, None, w)
                for i in known
            ]
        )
        scores[w] = float((probs[w].argmax(1) == y).mean())
    best = max(scores, key=lambda w: (scores[w], w))
    calibration.head_weight = best
    if best < 1.0:
        calibration.fused_temperature = fit_temperature(np.log(probs[best] + 1e-12), y)
    return {f"val_intent_accuracy_head_weight_{w}": v for w, v in scores.items()}


def decisions_for(
    hits: list[list[Hit]],
    logits: np.ndarray | None,
    intents: list[str],
    answers: dict[str, dict[str, str]],
    calibration: Calibration,
) -> list[Decision]:
    return [
        decide(h, None if logits is None else logits[i], intents, answers, calibration)
        for i, h in enumerate(hits)
    ]


def heldout_metrics(
    in_scope: list[Decision], pairs: Any, oos: list[Decision], threshold: float, intents: list[str]
) -> dict[str, float]:
    """Accuracy, in-scope accuracy after handoffs, OOS recall/precision/AUROC and retrieval ranks.

    OOS AUROC ranks in-scope above out-of-scope questions by the handoff score, whatever the
    threshold.
    """
    correct = np.array(
        [
            is_correct(d, a, i)
            for d, a, i in zip(in_scope, pairs["answer_id"], pairs["intent"], strict=True)
        ],
        dtype=bool,
    )
    handed = np.array([d.handoff_score < threshold for d in in_scope], dtype=bool)
    oos_handed = np.array([d.handoff_score < threshold for d in oos], dtype=bool)
    out: dict[str, float] = {"n_test": float(len(in_scope))}
    if len(in_scope):
        out.update(
            {
                "accuracy": float(correct.mean()),
                "in_scope_accuracy": float((correct & ~handed).mean()),
                "in_scope_handoff_rate": float(handed.mean()),
            }
        )
        out.update(
            {
                f"retrieval_{k}": v
                for k, v in retrieval_metrics(
                    _ranks([d.hits for d in in_scope], list(pairs["answer_id"])), ks=(1, 5)
                ).items()
                if not k.startswith("retrieval_ndcg")
            }
        )
        if intents and any(d.via == "intent" for d in in_scope):
            from sklearn.metrics import f1_score

            y = list(pairs["intent"])
            pred = [d.intent or "" for d in in_scope]
            out["intent_accuracy"] = float(np.mean([p == t for p, t in zip(pred, y, strict=True)]))
            out["intent_macro_f1"] = float(
                f1_score(y, pred, labels=sorted(set(y)), average="macro", zero_division=0)
            )
    if len(oos):
        out["n_test_oos"] = float(len(oos))
        out["oos_recall"] = float(oos_handed.mean())
        flagged = oos_handed.sum() + handed.sum()
        out["oos_precision"] = float(oos_handed.sum() / flagged) if flagged else 0.0
        if len(in_scope):
            from sklearn.metrics import roc_auc_score

            scores = [d.handoff_score for d in in_scope] + [d.handoff_score for d in oos]
            labels = [1] * len(in_scope) + [0] * len(oos)
            out["oos_auroc"] = float(roc_auc_score(labels, scores))
    return {
        k: v for k, v in out.items() if not k.endswith("ndcg_at_1") and not k.endswith("ndcg_at_5")
    }


def _ranks(hits: list[list[Hit]], targets: Sequence[str]) -> np.ndarray:
    ranks = np.full(len(targets), np.inf)
    for i, (row, target) in enumerate(zip(hits, targets, strict=True)):
        pos = next((j for j, h in enumerate(row) if h.answer_id == target), None)
        if pos is not None:
            ranks[i] = pos + 1
    return ranks


def fit_in_scope(
    in_scope: list[Decision], oos: list[Decision], calibration: Calibration
) -> list[Decision]:
    """Fits the in-scope weights on validation decisions, in place; returns them re-scored.

    Without out-of-scope questions the weights stay at their default (the confidence itself).
    """
    if oos and in_scope:
        calibration.in_scope_weights = fit_in_scope_weights(
            np.array([d.confidence for d in in_scope]),
            np.array([d.similarity for d in in_scope]),
            np.array([d.confidence for d in oos]),
            np.array([d.similarity for d in oos]),
        )
    for d in [*in_scope, *oos]:
        d.in_scope = float(
            in_scope_probability(d.confidence, d.similarity, calibration.in_scope_weights)
        )
    return [*in_scope, *oos]


def threshold_scores(
    in_scope: list[Decision], oos: list[Decision], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The validation handoff scores the threshold is chosen on: out-of-fold when there is OOS."""
    if not oos:
        return np.array([d.handoff_score for d in in_scope]), np.zeros(0)
    return out_of_fold_in_scope(
        np.array([d.confidence for d in in_scope]),
        np.array([d.similarity for d in in_scope]),
        np.array([d.confidence for d in oos]),
        np.array([d.similarity for d in oos]),
        seed=seed,
    )
