"""Baselines measured beside our model: MostPopular, ItemKNN (cosine) and BPR matrix factorisation.

MostPopular and ItemKNN expose `scores(user_rows) -> (B, N)` over all items, given the users'
training item rows. BPR is the `implicit` library's; `implicit_mf` tunes it (and ALS) on a
pipeline `Split`, while `run_baselines` fits it once with fixed settings for the demo's table.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def interaction_matrix(hist_rows: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary (U, N) user-item matrix from each user's item rows."""
    indptr = np.cumsum([0] + [len(h) for h in hist_rows])
    indices = np.concatenate(hist_rows) if hist_rows else np.zeros(0, dtype=np.int64)
    data = np.ones(len(indices), dtype=np.float32)
    m = sp.csr_matrix((data, indices, indptr), shape=(len(hist_rows), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


class MostPopular:
    """Ranks every item by its number of training users."""

    def __init__(self, train: sp.csr_matrix) -> None:
        self.pop = np.asarray(train.sum(0)).ravel().astype(np.float32)

    def scores(self, hist_rows: list[np.ndarray]) -> np.ndarray:
        return np.tile(self.pop, (len(hist_rows), 1))


class ItemKNN:
    """Item-item cosine similarity on the interaction matrix, keeping `k` neighbours per item."""

    def __init__(self, train: sp.csr_matrix, k: int = 100) -> None:
        x = train.tocsc().astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(0)).ravel()) + 1e-9
        sim = (x.T @ x).toarray() / norms[:, None] / norms[None, :]
        np.fill_diagonal(sim, 0.0)
        if k < sim.shape[1]:
            cut = np.partition(sim, -k, axis=1)[:, -k][:, None]
            sim[sim < cut] = 0.0
        self.sim = sim.astype(np.float32)
        self.n = train.shape[1]

    def scores(self, hist_rows: list[np.ndarray]) -> np.ndarray:
        return interaction_matrix(hist_rows, self.n) @ self.sim.T


def run_baselines(
    history,
    es,
    row_of: dict[str, int],
    n_items: int,
    seed: int = 0,
    bpr_iterations: int = 100,
    cold=None,
) -> dict[str, dict[str, float]]:
    """MostPopular, ItemKNN and BPR (`implicit`, 64 factors, untuned) fitted on `history` and
    scored on the evaluation set `es` (reported as `most_popular`, `item_knn`, `mf`).

    Args:
        history: Training interactions (one row per user-item) of every user.
        es: The evaluation set (pipeline.EvalSet); its users' rows come first in the matrix.
        cold: Optional (U, R) mask of the cold held-out items (`metrics.held_out_mask`).
    """
    from .implicit_mf import fit_implicit
    from .metrics import evaluate_scorer, subset_metrics
    from .split import histories

    seqs = histories(history, row_of)
    others = [u for u in seqs if u not in set(es.users)]
    rows = list(es.hist_rows) + [seqs[u]["items"] for u in others]
    train = interaction_matrix(rows, n_items)
    models = {"most_popular": MostPopular(train), "item_knn": ItemKNN(train)}
    bpr = fit_implicit("bpr", train, {"factors": 64, "iterations": bpr_iterations}, seed)
    out = {}
    for name, model in models.items():
        out[name], ranks = evaluate_scorer(
            lambda pos, m=model: m.scores([es.hist_rows[i] for i in pos]),
            es.relevant,
            es.hist_rows,
            n_items,
        )
        if cold is not None:
            out[name] |= {f"cold_{k}": v for k, v in subset_metrics(ranks, cold).items()}
    out["mf"], ranks = evaluate_scorer(
        lambda pos: bpr.user_factors[pos] @ bpr.item_factors.T, es.relevant, es.hist_rows, n_items
    )
    if cold is not None:
        out["mf"] |= {f"cold_{k}": v for k, v in subset_metrics(ranks, cold).items()}
    return out
