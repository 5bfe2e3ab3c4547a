"""Full rankings of evaluation users, per stage, kept for reports: ranks and the top items.

`recommender.pipeline.evaluate_model` reduces the same rankings to figures at K = 10; a report
also needs every held-out item's rank (for other K) and what each user was shown instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import evaluate_scorer
from .pipeline import EvalSet, candidates_for, rerank, top_candidates
from .ranker import ItemStats, Ranker

TOP = 3
"""How many of each user's top items a report shows."""


@dataclass
class RankedLists:
    """One stage's ranking of every evaluation user.

    Attributes:
        ranks: (U, R) 1-based rank of each held-out item (`es.relevant[i][j]` at `[i, j]`,
            `inf`-padded) among all unseen items, ties against it.
        top_rows: (U, TOP) rows of the best-ranked items (-1 where fewer exist).
        top_scores: (U, TOP) their scores: cosine for retrieval, the ranker's logit after it.
        coverage: Share of the catalogue in some user's top 10.
    """

    ranks: np.ndarray
    top_rows: np.ndarray
    top_scores: np.ndarray
    coverage: float


def rank_lists(
    user_vecs: np.ndarray,
    emb: np.ndarray,
    es: EvalSet,
    ranker: Ranker | None,
    stats: ItemStats | None,
    c: int,
    extra: int = 0,
) -> dict[str, RankedLists]:
    """`retrieval` (two-tower score) and, with a ranker, `ranked`: the orders of `evaluate_model`.

    The ranked order puts the reranked candidates (top-`c` retrieved plus `extra`
    co-interaction and `extra` popular items) first and every other item behind them in
    retrieval order, so it still ranks the whole catalogue.
    """
    n = emb.shape[0]
    metrics, ranks = evaluate_scorer(
        lambda pos: user_vecs[pos] @ emb.T, es.relevant, es.hist_rows, n
    )
    rows, scores = top_candidates(user_vecs @ emb.T, es.hist_rows, TOP)
    out = {"retrieval": RankedLists(ranks, rows, scores, metrics["coverage"])}
    if ranker is None or ranker.kind == "none":
        return out
    rows, scores = candidates_for(user_vecs, emb, es, stats, c, extra)
    reranked, ranked_scores = rerank(ranker, rows, scores, es.hist_rows, emb, stats)
    order = np.arange(reranked.shape[1], 0, -1, dtype=np.float32)

    def score_fn(pos: np.ndarray) -> np.ndarray:
        full = user_vecs[pos] @ emb.T - 1e3  # items beyond the candidates keep their order
        for j, i in enumerate(pos):
            keep = reranked[i] >= 0
            full[j, reranked[i][keep]] = order[keep]
        return full

    metrics, ranks = evaluate_scorer(score_fn, es.relevant, es.hist_rows, n)
    out["ranked"] = RankedLists(
        ranks, reranked[:, :TOP], ranked_scores[:, :TOP], metrics["coverage"]
    )
    return out
