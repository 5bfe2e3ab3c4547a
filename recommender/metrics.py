"""Offline ranking metrics over all items (seen items excluded), with several held-out items per user.

Each user's held-out items are ranked among every unseen item; ties count against them, so a
constant scorer is not rewarded. From those ranks, with the hits the held-out items at a position
p <= K (definitions of Microsoft Recommenders' `python_evaluation`, binary relevance):

- precision@K = hits / K
- recall@K = hits / |rel|
- NDCG@K = sum over hits of 1/log2(p + 1), divided by the ideal DCG over min(|rel|, K) positions
- MAP@K = sum over hits of (hits at or above p) / p, divided by min(|rel|, K)
- hit_rate@K = 1 when some held-out item is in the top K
- MRR = 1 / the rank of the best-ranked held-out item (no cut-off)

each averaged over users; coverage is the share of the catalogue in some user's top K. With one
held-out item per user (leave-last-out), recall@K is the hit rate and NDCG@K is 1/log2(rank + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

COLD_MAX_TRAIN_USERS = 3
"""A held-out item is cold when at most this many users took it in the training history."""
PAIR_CHUNK = 1 << 22
"""Most (held-out item, catalogue item) comparisons held in memory at once."""


def relevant_ranks(
    scores: np.ndarray, relevant: Sequence[np.ndarray], seen: Sequence[np.ndarray]
) -> np.ndarray:
    """(B, R) 1-based rank of `relevant[i][j]` among user i's unseen items, at `[i, j]`.

    An item ranks behind every other unseen item that scores at least as high and is not
    held out, and behind the held-out items that score higher (equal held-out items are
    ordered by position), so the ranks of one user are distinct. Rows are padded with `inf`.

    Args:
        scores: (B, N) scores of B users over all N items.
        relevant: Per user, the held-out item rows.
        seen: Per user, training item rows (excluded from the ranking).
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    b, n = scores.shape
    sizes = np.array([len(r) for r in relevant], dtype=np.int64)
    out = np.full((b, max(1, int(sizes.max(initial=0)))), np.inf)
    if not sizes.sum():
        return out
    user = np.repeat(np.arange(b), sizes)
    item = np.concatenate([np.asarray(r, dtype=np.int64) for r in relevant])
    held = np.zeros((b, n), dtype=bool)
    held[user, item] = True
    for i, rows in enumerate(seen):
        rows = np.asarray(rows, dtype=np.int64)
        scores[i, rows[~held[i, rows]]] = -np.inf
    scores[np.isnan(scores)] = -np.inf
    own = scores[user, item]
    ahead = np.empty(len(item))
    step = max(1, PAIR_CHUNK // max(1, n))
    for lo in range(0, len(item), step):
        u, s = user[lo : lo + step], own[lo : lo + step, None]
        ahead[lo : lo + step] = ((scores[u] >= s) & ~held[u]).sum(1)
    # a user's held-out items in score order (ties: given order); the j-th has j of them ahead
    slot = np.arange(len(item)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    order = np.lexsort((slot, -own, user))
    out[user[order], slot[order]] = 1 + ahead[order] + slot
    return out


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = (10,)) -> dict[str, float]:
    """Precision, recall, NDCG, MAP and hit rate at each K, and MRR, from `relevant_ranks`.

    Args:
        ranks: (U, R) 1-based ranks of each user's held-out items, `inf`-padded, in any order;
            users without any held-out item (all `inf`) are left out.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    ranks = np.sort(ranks[:, None] if ranks.ndim == 1 else ranks, axis=1)
    n_rel = np.isfinite(ranks).sum(1)
    ranks, n_rel = ranks[n_rel > 0], n_rel[n_rel > 0]
    if not len(ranks):
        return {"mrr": 0.0} | {
            f"{name}_at_{k}": 0.0
            for k in ks
            for name in ("precision", "recall", "ndcg", "map", "hit_rate")
        }
    out = {"mrr": float(np.mean(1.0 / ranks[:, 0]))}
    position = np.arange(1, ranks.shape[1] + 1)  # the j-th held-out item has j at or above it
    for k in ks:
        hit = ranks <= k
        hits = hit.sum(1)
        gains = np.where(hit, 1.0 / np.log2(np.where(hit, ranks, 1.0) + 1), 0.0).sum(1)
        ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[np.minimum(n_rel, k) - 1]
        precisions = np.where(hit, position / np.where(hit, ranks, 1.0), 0.0).sum(1)
        out[f"precision_at_{k}"] = float(np.mean(hits / k))
        out[f"recall_at_{k}"] = float(np.mean(hits / n_rel))
        out[f"ndcg_at_{k}"] = float(np.mean(gains / ideal))
        out[f"map_at_{k}"] = float(np.mean(precisions / np.minimum(n_rel, k)))
        out[f"hit_rate_at_{k}"] = float(np.mean(hits > 0))
    return out


def evaluate_scorer(
    score_fn: Callable[[np.ndarray], np.ndarray],
    relevant: Sequence[np.ndarray],
    seen: Sequence[np.ndarray],
    n_items: int,
    batch: int = 512,
    ks: Sequence[int] = (10,),
) -> tuple[dict[str, float], np.ndarray]:
    """The metrics of :func:`ranking_metrics` and catalogue coverage of the top max(K).

    Args:
        score_fn: Maps an array of evaluation-user positions to their (B, N) item scores.
        relevant: Held-out item rows per user (one or several).
        seen: Training item rows per user (excluded from ranking).

    Returns:
        The metrics, and the (U, R) ranks of :func:`relevant_ranks` (`[i, j]`: `relevant[i][j]`).
    """
    top_k = max(ks)
    blocks, shown = [], set()
    for start in range(0, len(relevant), batch):
        pos = np.arange(start, min(start + batch, len(relevant)))
        scores = np.array(score_fn(pos), dtype=np.float64, copy=True)
        blocks.append(relevant_ranks(scores, [relevant[i] for i in pos], [seen[i] for i in pos]))
        for j, i in enumerate(pos):
            scores[j, seen[i]] = -np.inf
        k = min(top_k, scores.shape[1] - 1)
        if k > 0:
            shown.update(np.argpartition(-scores, k, axis=1)[:, :k].ravel().tolist())
    ranks = _stack(blocks)
    metrics = ranking_metrics(ranks, ks=ks)
    metrics["coverage"] = len(shown) / max(1, n_items)
    return metrics, ranks


def subset_metrics(
    ranks: np.ndarray, mask: np.ndarray, ks: Sequence[int] = (10,)
) -> dict[str, float]:
    """The metrics of the held-out items in `mask` (e.g. cold items), ranked as in `ranks`.

    Each user's relevant set becomes its held-out items in `mask`; users with none are left out.
    The count of those users and of the items go along (`users`, `items`).

    Args:
        ranks: (U, R) ranks from :func:`evaluate_scorer`.
        mask: (U, R) which held-out items (`[i, j]`: `relevant[i][j]`) belong to the subset,
            or (U,) to take whole users.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 1:
        mask = np.repeat(mask[:, None], ranks.shape[1], axis=1)
    kept = np.where(mask & np.isfinite(ranks), ranks, np.inf)
    users = int(np.isfinite(kept).any(1).sum())
    out = ranking_metrics(kept, ks=ks) if users else {}
    return {**out, "users": users, "items": int(np.isfinite(kept).sum())}


def _stack(blocks: list[np.ndarray]) -> np.ndarray:
    """Concatenates `inf`-padded rank blocks of different widths."""
    if not blocks:
        return np.full((0, 1), np.inf)
    width = max(b.shape[1] for b in blocks)
    return np.concatenate(
        [np.pad(b, ((0, 0), (0, width - b.shape[1])), constant_values=np.inf) for b in blocks]
    )


def held_out_mask(relevant: Sequence[np.ndarray], keep: np.ndarray) -> np.ndarray:
    """(U, R) mask, aligned with the ranks of :func:`evaluate_scorer`, of the held-out items
    whose row `keep` marks (e.g. `keep = training users per item <= 3` for cold items)."""
    width = max(1, max((len(r) for r in relevant), default=0))
    mask = np.zeros((len(relevant), width), dtype=bool)
    for i, rows in enumerate(relevant):
        mask[i, : len(rows)] = np.asarray(keep)[np.asarray(rows, dtype=np.int64)]
    return mask


def cold_rows(history: pd.DataFrame, item_ids: Sequence[str]) -> np.ndarray:
    """(N,) whether each catalogue item has at most `COLD_MAX_TRAIN_USERS` users in `history`."""
    users = history.groupby("item_id")["user_id"].nunique()
    return users.reindex(list(item_ids)).fillna(0).to_numpy() <= COLD_MAX_TRAIN_USERS
