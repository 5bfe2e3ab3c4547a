"""Scoring steps shared by training-time evaluation, the runtime and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import evaluate_scorer, subset_metrics
from .ranker import ItemStats, Ranker, candidate_features, history_matrix
from .towers import UserTower, pool_users


@dataclass
class EvalSet:
    """Held-out users: their training histories (most recent first) and held-out rows.

    Attributes:
        targets: (U,) each user's first held-out row (in time): the one leave-last-out holds.
        relevant: Per user, every held-out row (first `targets[i]`); one each when not given.
    """

    users: list[str]
    hist_rows: list[np.ndarray]
    hist_weights: list[np.ndarray]
    targets: np.ndarray
    relevant: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.relevant is None:
            self.relevant = [np.asarray([t], dtype=np.int64) for t in self.targets]


def eval_set(
    history: pd.DataFrame, held: pd.DataFrame, row_of: dict[str, int], max_history: int
) -> EvalSet:
    """Groups the held-out rows by user (in time order) beside the user's rows in `history`.

    Users without rows in `history` are left out: there is nothing to recommend from.
    """
    from .split import histories

    seqs = histories(history, row_of)
    held = held.sort_values("ts", kind="stable")
    users, rows, weights, relevant = [], [], [], []
    for user, items in held.groupby(held["user_id"].astype(str), sort=False)["item_id"]:
        seq = seqs.get(user)
        if seq is None or not len(seq["items"]):
            continue
        users.append(user)
        rows.append(seq["items"][::-1].copy())
        weights.append(seq["weights"][::-1].copy())
        relevant.append(np.asarray([row_of[i] for i in items], dtype=np.int64))
    targets = np.asarray([r[0] for r in relevant], dtype=np.int64)
    return EvalSet(users, rows, weights, targets, relevant)


def is_relevant(rows: np.ndarray, relevant: list[np.ndarray]) -> np.ndarray:
    """(B, C) whether each candidate row is one of its user's held-out rows."""
    n = int(max(rows.max(initial=0), max((r.max(initial=0) for r in relevant), default=0))) + 1
    keys = np.concatenate(
        [i * n + np.asarray(r, dtype=np.int64) for i, r in enumerate(relevant)] or [[]]
    )
    return np.isin(np.arange(len(rows))[:, None] * n + rows, keys) & (rows >= 0)


def user_vectors(tower: UserTower, emb: np.ndarray, es: EvalSet, max_history: int) -> np.ndarray:
    """(U, D) user vectors of an evaluation set."""
    rows = [
        (h[:max_history], w[:max_history])
        for h, w in zip(es.hist_rows, es.hist_weights, strict=True)
    ]
    out = [
        pool_users(tower, emb, rows[i : i + 1024], max_history) for i in range(0, len(rows), 1024)
    ]
    return np.concatenate(out) if out else np.zeros((0, emb.shape[1]), np.float32)


def top_candidates(
    scores: np.ndarray, seen: list[np.ndarray], c: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`c` unseen rows per user, best first, with their scores."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    for i, rows in enumerate(seen):
        scores[i, rows] = -np.inf
    c = min(c, scores.shape[1])
    part = np.argpartition(-scores, c - 1, axis=1)[:, :c]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    rows = np.take_along_axis(part, order, 1)
    return rows, np.take_along_axis(scores, rows, 1)


def add_sources(
    rows: np.ndarray,
    user_vecs: np.ndarray,
    emb: np.ndarray,
    hist_rows: list[np.ndarray],
    stats: ItemStats,
    extra: int,
    blocked: list[set[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Adds `extra` co-interaction neighbours, `extra` ALS picks and `extra` popular items to
    each user's candidates.

    Two-tower retrieval finds items by text; these sources add what behaviour says (items often
    taken together with the user's history, the latent taste of the whole matrix, and what is
    popular now). Returns (B, C + 3*extra) rows (-1 where too few items exist) and their
    two-tower scores (-inf there).
    """
    b, c = rows.shape
    out = np.full((b, c + 3 * extra), -1, dtype=np.int64)
    out[:, :c] = rows
    popular = stats.popular_order()
    cf = mf = None
    if extra and stats.similarity is not None:  # (B, N) ItemKNN scores, one sparse product
        cf = (history_matrix(hist_rows, stats.similarity.shape[0]) @ stats.similarity).tocsr()
        cf.sort_indices()
    if extra and stats.factors is not None:  # enough for `extra` after the user's own rows
        own_most = c + max((len(h) for h in hist_rows), default=0)
        own_most += max((len(x) for x in blocked or []), default=0)
        mf = stats.factors.top(hist_rows, extra + own_most)
    taken = np.zeros(len(stats.popularity), dtype=bool)  # reset after each user
    for i in range(b if extra else 0):
        own = [rows[i][rows[i] >= 0], hist_rows[i]]
        if blocked and blocked[i]:
            own.append(np.fromiter(blocked[i], dtype=np.int64))
        own_rows = np.concatenate(own).astype(np.int64)
        taken[own_rows] = True
        picks = np.zeros(0, dtype=np.int64)
        if cf is not None:
            lo, hi = cf.indptr[i], cf.indptr[i + 1]
            idx, val = cf.indices[lo:hi], cf.data[lo:hi]
            idx = idx[val > 0][np.argsort(-val[val > 0], kind="stable")]
            picks = idx[~taken[idx]][:extra]
            taken[picks] = True
        if mf is not None:
            latent = mf[i][~taken[mf[i]]][:extra]
            taken[latent] = True
            picks = np.concatenate([picks, latent])
        top = popular[: 3 * extra + len(own_rows) + len(picks)]
        picks = np.concatenate([picks, top[~taken[top]][: 3 * extra - len(picks)]])
        out[i, c : c + len(picks)] = picks
        taken[own_rows] = False
        taken[picks] = False
    vecs = emb[np.clip(out, 0, None)]
    scores = np.where(out >= 0, np.einsum("bd,bcd->bc", user_vecs, vecs), -np.inf)
    return out, scores.astype(np.float32)


def rerank(
    ranker: Ranker,
    rows: np.ndarray,
    scores: np.ndarray,
    hist_rows: list[np.ndarray],
    emb: np.ndarray,
    stats: ItemStats,
) -> tuple[np.ndarray, np.ndarray]:
    """Reorders candidate rows by the ranker; returns rows and ranker scores, best first."""
    x = candidate_features(rows, scores, hist_rows, emb, stats)
    ranked = np.where(rows >= 0, ranker.score(x), -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")
    return np.take_along_axis(rows, order, 1), np.take_along_axis(ranked, order, 1)


def candidates_for(
    user_vecs: np.ndarray, emb: np.ndarray, es: EvalSet, stats: ItemStats, c: int, extra: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`c` unseen retrieved rows plus the behavioural sources of :func:`add_sources`."""
    rows, scores = top_candidates(user_vecs @ emb.T, es.hist_rows, c)
    if not extra:
        return rows, scores
    more, more_scores = add_sources(rows, user_vecs, emb, es.hist_rows, stats, extra)
    more_scores[:, : rows.shape[1]] = scores  # keep -inf on seen rows of tiny catalogues
    return more, more_scores


def ranker_training_data(
    user_vecs: np.ndarray,
    emb: np.ndarray,
    es: EvalSet,
    stats: ItemStats,
    c: int,
    extra: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) features and 0/1 labels of every user's candidates."""
    rows, scores = candidates_for(user_vecs, emb, es, stats, c, extra)
    x = candidate_features(rows, scores, es.hist_rows, emb, stats)
    y = is_relevant(rows, es.relevant).astype(np.int64)
    valid = (np.isfinite(scores) & (rows >= 0)).ravel()  # fewer unseen items than candidates
    return x.reshape(-1, x.shape[-1])[valid], y.ravel()[valid]


def evaluate_model(
    user_vecs: np.ndarray,
    emb: np.ndarray,
    es: EvalSet,
    ranker: Ranker | None,
    stats: ItemStats | None,
    c: int,
    cold: np.ndarray | None = None,
    extra: int = 0,
    ks: tuple[int, ...] = (10,),
) -> dict[str, float]:
    """Full-ranking metrics of retrieval alone and (when given) retrieval + ranker.

    With the ranker, the candidates (top-`c` retrieved plus `extra` co-interaction and `extra`
    popular items) are reordered and the rest keep their retrieval order behind them, so the
    ranking still covers every item. `cold` ((U, R) as `metrics.held_out_mask`) marks the
    cold held-out items; their metrics are reported with a `cold_` prefix.
    """
    n = emb.shape[0]
    base, ranks = evaluate_scorer(
        lambda pos: user_vecs[pos] @ emb.T, es.relevant, es.hist_rows, n, ks=ks
    )
    out = {f"retrieval_{k}": v for k, v in base.items()}
    if cold is not None:
        cold_figures = subset_metrics(ranks, cold, ks=ks)
        out |= {f"cold_retrieval_{k}": v for k, v in cold_figures.items()}
    if ranker is None or ranker.kind == "none":
        return out
    rows, scores = candidates_for(user_vecs, emb, es, stats, c, extra)
    reranked, ranked_scores = rerank(ranker, rows, scores, es.hist_rows, emb, stats)
    c_eff = rows.shape[1]

    def score_fn(pos: np.ndarray) -> np.ndarray:
        full = user_vecs[pos] @ emb.T - 1e3  # items beyond the candidates keep their order
        for j, i in enumerate(pos):
            keep = reranked[i] >= 0
            full[j, reranked[i][keep]] = np.arange(c_eff, 0, -1, dtype=np.float32)[keep]
        return full

    ranked, ranks2 = evaluate_scorer(score_fn, es.relevant, es.hist_rows, n, ks=ks)
    out |= {f"ranked_{k}": v for k, v in ranked.items()}
    if cold is not None:
        cold_figures = subset_metrics(ranks2, cold, ks=ks)
        out |= {f"cold_ranked_{k}": v for k, v in cold_figures.items()}
    return out
