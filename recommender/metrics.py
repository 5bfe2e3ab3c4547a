"""Offline evaluation with full ranking over all items, seen items excluded."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shared.evaluation import rank_of_target, retrieval_metrics


def ranks_full(scores: np.ndarray, targets: np.ndarray, seen: list[np.ndarray]) -> np.ndarray:
    """1-based rank of each target among all items, with the user's training items removed.

    Ties count against the target, so a constant scorer is not rewarded.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    for i, rows in enumerate(seen):
        keep = rows[rows != targets[i]]
        scores[i, keep] = -np.inf
    return rank_of_target(scores, targets)


def evaluate_scorer(
    score_fn: Callable[[np.ndarray], np.ndarray],
    targets: np.ndarray,
    seen: list[np.ndarray],
    n_items: int,
    batch: int = 512,
    k: int = 10,
) -> tuple[dict[str, float], np.ndarray]:
    """Recall@10, NDCG@10, MRR and catalogue coverage of the top 10; also returns the ranks.

    Args:
        score_fn: Maps an array of evaluation-user positions to their (B, N) item scores.
        targets: (U,) held-out item row per user.
        seen: Training item rows per user (excluded from ranking).
    """
    ranks, shown = [], set()
    for start in range(0, len(targets), batch):
        pos = np.arange(start, min(start + batch, len(targets)))
        scores = np.array(score_fn(pos), dtype=np.float64, copy=True)
        ranks.append(ranks_full(scores, targets[pos], [seen[i] for i in pos]))
        for j, i in enumerate(pos):
            scores[j, seen[i]] = -np.inf
        shown.update(np.argpartition(-scores, k, axis=1)[:, :k].ravel().tolist())
    ranks_all = np.concatenate(ranks) if ranks else np.zeros(0)
    metrics = retrieval_metrics(ranks_all, ks=(k,))
    metrics["coverage"] = len(shown) / max(1, n_items)
    return metrics, ranks_all


def subset_metrics(ranks: np.ndarray, mask: np.ndarray, k: int = 10) -> dict[str, float]:
    """Recall/NDCG/MRR on a subset of users (e.g. cold held-out items), with its size."""
    out = retrieval_metrics(ranks[mask], ks=(k,)) if mask.any() else {}
    return {**out, "users": int(mask.sum())}
