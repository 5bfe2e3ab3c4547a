"""Baselines measured beside our model: MostPopular, ItemKNN (cosine) and BPR matrix factorisation.

Each exposes `scores(user_rows) -> (B, N)` over all items, given the users' training item rows.
The tuned ALS and BPR of the `implicit` library, on a pipeline `Split`, are in `implicit_mf`;
the small BPR here (`mf`) is kept for the demo's table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

log = logging.getLogger(__name__)


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


@dataclass
class BPR:
    """Bayesian personalised ranking MF (Rendle et al. 2009) trained with Adam on sampled triples.

    The fields are hyperparameters; `fit(train)` learns the factors and returns the model.
    """

    dim: int = 64
    epochs: int = 40
    lr: float = 0.01
    reg: float = 1e-4
    seed: int = 0

    def fit(self, train: sp.csr_matrix) -> BPR:
        gen = torch.Generator().manual_seed(self.seed)
        coo = train.tocoo()
        users = torch.as_tensor(coo.row, dtype=torch.long)
        items = torch.as_tensor(coo.col, dtype=torch.long)
        n_users, n_items = train.shape
        self.user = torch.nn.Parameter(0.01 * torch.randn(n_users, self.dim, generator=gen))
        self.item = torch.nn.Parameter(0.01 * torch.randn(n_items, self.dim, generator=gen))
        self.bias = torch.nn.Parameter(torch.zeros(n_items))
        opt = torch.optim.Adam([self.user, self.item, self.bias], lr=self.lr)
        for epoch in range(self.epochs):
            perm = torch.randperm(len(users), generator=gen)
            total = 0.0
            for start in range(0, len(perm), 2048):
                idx = perm[start : start + 2048]
                j = torch.randint(0, n_items, (len(idx),), generator=gen)
                loss = self._loss(users[idx], items[idx], j)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            log.debug("bpr epoch %d loss %.4f", epoch + 1, total / max(1, len(users)))
        return self

    def _loss(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """BPR loss of users `u` preferring items `i` to sampled items `j`, with L2 on the factors."""
        pu, qi, qj = self.user[u], self.item[i], self.item[j]
        diff = (pu * (qi - qj)).sum(1) + self.bias[i] - self.bias[j]
        l2 = (pu.pow(2) + qi.pow(2) + qj.pow(2)).sum(1).mean()
        return -torch.nn.functional.logsigmoid(diff).mean() + self.reg * l2

    def scores_for(self, user_index: np.ndarray) -> np.ndarray:
        """Scores of users by their row in the training matrix."""
        with torch.no_grad():
            u = self.user[torch.as_tensor(user_index, dtype=torch.long)]
            return (u @ self.item.T + self.bias).numpy()


def run_baselines(
    history,
    es,
    row_of: dict[str, int],
    n_items: int,
    seed: int = 0,
    bpr_epochs: int = 40,
    cold=None,
) -> dict[str, dict[str, float]]:
    """MostPopular, ItemKNN and BPR fitted on `history` and scored on the evaluation set `es`.

    Args:
        history: Training interactions (one row per user-item) of every user.
        es: The evaluation set (pipeline.EvalSet); its users' rows come first in the matrix.
        cold: Optional (U, R) mask of the cold held-out items (`metrics.held_out_mask`).
    """
    from .metrics import evaluate_scorer, subset_metrics
    from .split import histories

    seqs = histories(history, row_of)
    others = [u for u in seqs if u not in set(es.users)]
    rows = list(es.hist_rows) + [seqs[u]["items"] for u in others]
    train = interaction_matrix(rows, n_items)
    models = {"most_popular": MostPopular(train), "item_knn": ItemKNN(train)}
    bpr = BPR(epochs=bpr_epochs, seed=seed).fit(train)
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
        lambda pos: bpr.scores_for(pos), es.relevant, es.hist_rows, n_items
    )
    if cold is not None:
        out["mf"] |= {f"cold_{k}": v for k, v in subset_metrics(ranks, cold).items()}
    return out
