"""Matrix factorisation for the ranker: ALS item factors, and a history's score for any item.

Text towers find items by what they say; co-occurrence (ItemKNN) by what was taken together.
Implicit-feedback ALS (Hu et al. 2008, the `implicit` library) adds the latent taste behind the
whole matrix, which on dense interaction data ranks better than either (the Last.fm and
MovieTweetings rows of `bench/generalization.py`). The ranker reads its score as one more
feature, and its best items as one more candidate source.

A user's vector is solved from the item factors and the user's history (the ALS user step,
`recalculate_user`), so any history scores: a user of the training data, one whose events were
logged since, or an ad-hoc history. The factors are fitted where the co-occurrence is (at
training, at service start and on each refresh), from the same histories; items added later
have zero factors until the next refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

ALS_PARAMS = {"factors": 32, "regularization": 0.1, "alpha": 10.0, "iterations": 15}
"""Fixed: one setting for every catalogue (the ranker learns how much the score counts).
Confidence 1 + alpha on the 0/1 matrix: alpha 1 underfits sparse data badly."""


def interactions(hist_rows: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """(U, N) 0/1 float32 matrix of the histories' rows."""
    indptr = np.cumsum([0, *(len(h) for h in hist_rows)])
    indices = np.concatenate(hist_rows).astype(np.int64) if hist_rows else np.zeros(0, np.int64)
    m = sp.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr), shape=(len(hist_rows), n_items)
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


@dataclass
class ItemFactors:
    """A fitted `implicit` ALS model over `n` items; `model.item_factors` is (n, factors)."""

    model: Any
    n: int

    @classmethod
    def fit(cls, user_rows: list[np.ndarray], n: int, seed: int = 0) -> ItemFactors | None:
        """ALS on the histories `user_rows`; None without any interaction."""
        if n == 0 or not any(len(r) for r in user_rows):
            return None
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        model = AlternatingLeastSquares(
            **ALS_PARAMS, random_state=seed, num_threads=1, use_gpu=False
        )
        with threadpool_limits(1, "blas"):  # implicit's own loop; BLAS threads only slow it
            model.fit(interactions(user_rows, n), show_progress=False)
        return cls(model, n)

    def extend(self, n: int) -> None:
        """Zero factors for `n` new items (no interaction yet: no latent score)."""
        factors = self.model.item_factors
        pad = np.zeros((n, factors.shape[1]), dtype=factors.dtype)
        self.model.item_factors = np.concatenate([factors, pad])
        self.n += n

    def user_vectors(self, hist_rows: list[np.ndarray]) -> np.ndarray:
        """(B, factors) vectors solved from each history (zeros for an empty one)."""
        histories = [h[h < self.n] for h in hist_rows]
        users = self.model.recalculate_user(
            np.arange(len(histories)), interactions(histories, self.n)
        )
        users = np.asarray(users, dtype=np.float32).reshape(len(histories), -1)
        users[[len(h) == 0 for h in histories]] = 0.0
        return users

    def scores(self, hist_rows: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
        """(B, C) scores of each user's candidate `rows` (0 where a row is -1 or unknown)."""
        items = np.asarray(self.model.item_factors, dtype=np.float32)
        safe = np.clip(rows, 0, None)
        known = (rows >= 0) & (rows < self.n)
        vecs = np.where(known[..., None], items[np.minimum(safe, self.n - 1)], 0.0)
        return np.einsum("bf,bcf->bc", self.user_vectors(hist_rows), vecs).astype(np.float32)

    def top(self, hist_rows: list[np.ndarray], k: int, chunk: int = 1024) -> np.ndarray:
        """(B, min(k, n)) best rows of each user by score over the whole catalogue, `chunk`
        users at a time (a (chunk, n) score block in memory, not (B, n))."""
        items = np.asarray(self.model.item_factors, dtype=np.float32).T
        users, k = self.user_vectors(hist_rows), min(k, self.n)
        out = np.empty((len(users), k), dtype=np.int64)
        for start in range(0, len(users), chunk):
            scores = users[start : start + chunk] @ items
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
            out[start : start + chunk] = np.take_along_axis(part, order, 1)
        return out
