"""The ranker: combines the two-tower score with popularity, trend, item age, category affinity,
the item-item co-occurrence (ItemKNN) score against the user's history, and the ALS score of
the history (`factors.py`).

It is a logistic layer on standardised features, learned on validation interactions (the item
each user took next after the training period) and stored as JSON numbers, never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shared.inputs import parse_timestamps

from .factors import ItemFactors

FEATURES = (
    "model_score",
    "log_rank",
    "log_popularity",
    "log_trending",
    "log_age_days",
    "category_affinity",
    "max_history_similarity",
    "log_history_length",
    "cooccurrence",
    "log_cooccurrence_rank",
    "recent_cooccurrence",
    "log_recent_cooccurrence_rank",
    "last_item_cooccurrence",
    "log_last_item_cooccurrence_rank",
    "few_users",
    "few_users_model_score",
    "few_users_history_similarity",
    "mf_score",
    "log_mf_rank",
)
TEXT_FEATURES = (
    "model_score",
    "log_rank",
    "max_history_similarity",
    "few_users_model_score",
    "few_users_history_similarity",
)
"""The features that come from the item text (the towers' embeddings); the rest are behaviour."""
FEW_USERS = 3
"""An item with at most this many users so far is `few_users` (what the evaluation calls cold):
its behaviour features say little, so its text features get their own weights, which a linear
ranker could not give them otherwise (for a popular item the same text score counts less)."""
NEIGHBOURS = 100
RECENCY_DECAY = 0.8


def item_similarity(
    user_rows: list[np.ndarray], n_items: int, k: int = NEIGHBOURS
) -> sp.csr_matrix:
    """Sparse item-item cosine similarity of co-interaction, keeping the `k` best neighbours per item.

    The collaborative signal the ranker adds to text similarity; (N, N) CSR, zero diagonal.
    """
    indptr = np.cumsum([0] + [len(r) for r in user_rows])
    indices = np.concatenate(user_rows).astype(np.int64) if user_rows else np.zeros(0, np.int64)
    x = sp.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr), shape=(len(user_rows), n_items)
    )
    x.sum_duplicates()
    x.data[:] = 1.0
    counts = np.asarray(x.sum(0)).ravel()
    sim = (x.T @ x).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    norm = np.sqrt(np.maximum(counts, 1.0))
    sim = sp.diags(1 / norm) @ sim @ sp.diags(1 / norm)
    sim = sim.tocsr()
    for i in range(n_items):  # keep the k strongest neighbours of each item
        lo, hi = sim.indptr[i], sim.indptr[i + 1]
        if hi - lo > k:
            row = sim.data[lo:hi]
            row[row < np.partition(row, -k)[-k]] = 0.0
    sim.eliminate_zeros()
    return sim.astype(np.float32)


@dataclass
class ItemStats:
    """Per-row item signals at a reference time; rows follow the item index."""

    popularity: np.ndarray
    trending: np.ndarray
    age_days: np.ndarray
    category: np.ndarray
    similarity: sp.csr_matrix | None = None
    factors: ItemFactors | None = None
    _order: np.ndarray | None = None

    def popular_order(self) -> np.ndarray:
        """Rows by trend, then all-time popularity (cached until :meth:`touch`)."""
        if self._order is None or len(self._order) != len(self.popularity):
            self._order = np.lexsort((-self.popularity, -self.trending))
        return self._order

    def touch(self) -> None:
        """Forgets the cached order after popularity or trend changed."""
        self._order = None

    @classmethod
    def compute(
        cls,
        ids: list[str],
        categories: list[str],
        created_at: pd.Series,
        interactions: pd.DataFrame,
        now: pd.Timestamp,
        trending_days: float,
    ) -> ItemStats:
        """Counts distinct users per item (all time and over the last `trending_days` before `now`).

        An item's age runs from `created_at`, or from its first interaction when that is missing.
        """
        row_of = {item: row for row, item in enumerate(ids)}
        n = len(ids)
        past = interactions[interactions["ts"] <= now]
        counts = past.groupby("item_id")["user_id"].nunique()
        recent = (
            past[past["ts"] > now - pd.Timedelta(days=trending_days)]
            .groupby("item_id")["user_id"]
            .nunique()
        )
        first = past.groupby("item_id")["ts"].min()
        pop, trend, age = np.zeros(n), np.zeros(n), np.full(n, np.nan)
        for series, out in ((counts, pop), (recent, trend)):
            rows = series.index.map(row_of)
            out[rows.to_numpy(dtype=np.int64)] = series.to_numpy(dtype=np.float64)
        created = parse_timestamps(list(created_at))[0]
        first_seen = parse_timestamps(list(pd.Series(ids).map(first)))[0]
        born = created.where(created.notna(), first_seen)
        # in epoch seconds: two valid times may lie further apart than a Timedelta reaches
        # (292 years), while each lies within 230 years of the epoch
        epoch = pd.Timestamp(0, tz="UTC")
        born_s = (born - epoch).dt.total_seconds().to_numpy(dtype=np.float64)
        age = (pd.Timestamp(now).timestamp() - born_s) / 86400
        age = np.where(np.isnan(age), 0.0, np.clip(age, 0.0, None))
        users = past.groupby("user_id")["item_id"].agg(list)
        user_rows = [np.asarray([row_of[i] for i in items], dtype=np.int64) for items in users]
        sim = item_similarity(user_rows, n)
        factors = ItemFactors.fit(user_rows, n)
        return cls(pop, trend, age, np.asarray(categories, dtype=object), sim, factors)

    def extend(self, n: int, categories: list[str]) -> None:
        """Grows the arrays for `n` new items (no interactions yet, age zero)."""
        self.popularity = np.concatenate([self.popularity, np.zeros(n)])
        self.trending = np.concatenate([self.trending, np.zeros(n)])
        self.age_days = np.concatenate([self.age_days, np.zeros(n)])
        self.category = np.concatenate([self.category, np.asarray(categories, dtype=object)])
        if self.factors is not None:
            self.factors.extend(n)
        if self.similarity is not None:
            size = len(self.popularity)
            self.similarity = sp.csr_matrix(
                (
                    self.similarity.data,
                    self.similarity.indices,
                    np.concatenate(
                        [self.similarity.indptr, np.full(n, self.similarity.indptr[-1])]
                    ),
                ),
                shape=(size, size),
            )


def history_matrix(
    hist_rows: list[np.ndarray], n_items: int, decay: float | None = None
) -> sp.csr_matrix:
    """(B, N) sparse matrix of each user's history rows (most recent first).

    Entries are 1, or `decay ** position` when `decay` is given, so recent items count more.
    """
    lengths = [len(h) for h in hist_rows]
    indptr = np.cumsum([0, *lengths])
    indices = np.concatenate(hist_rows).astype(np.int64) if indptr[-1] else np.zeros(0, np.int64)
    if decay is None:
        data = np.ones(len(indices), np.float32)
    else:
        data = np.concatenate(
            [decay ** np.arange(n, dtype=np.float32) for n in lengths] or [np.zeros(0)]
        ).astype(np.float32)
    out = sp.csr_matrix((data, indices, indptr), shape=(len(hist_rows), n_items))
    out.sum_duplicates()
    return out


def _gather(m: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Values m[i, rows[i, j]] of a sparse (B, N) matrix as a dense (B, C) array."""
    m = m.tocsr()
    m.sort_indices()
    out = np.zeros(rows.shape, dtype=np.float32)
    for i in range(rows.shape[0]):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        if hi > lo:
            idx = m.indices[lo:hi]
            pos = np.clip(np.searchsorted(idx, rows[i]), 0, hi - lo - 1)
            out[i] = np.where(idx[pos] == rows[i], m.data[lo:hi][pos], 0.0)
    return out


def candidate_features(
    cand_rows: np.ndarray,
    cand_scores: np.ndarray,
    hist_rows: list[np.ndarray],
    emb: np.ndarray,
    stats: ItemStats,
) -> np.ndarray:
    """(B, C, F) features of each user's candidates, in the order of :data:`FEATURES`.

    The co-occurrence features are the ItemKNN score of a candidate against the whole history,
    against a recency-decayed history, and against the most recent item; each is also given
    as its log rank among the user's candidates.
    """
    b, c = cand_rows.shape
    n = len(stats.popularity)
    out = np.zeros((b, c, len(FEATURES)), dtype=np.float32)
    safe = np.clip(cand_rows, 0, None)
    out[..., 0] = np.where(np.isfinite(cand_scores), cand_scores, -1.0)  # -inf marks excluded rows
    out[..., 1] = _log_rank(out[..., 0])
    out[..., 2] = np.log1p(stats.popularity[safe])
    out[..., 3] = np.log1p(stats.trending[safe])
    out[..., 4] = np.log1p(stats.age_days[safe])
    for i, hist in enumerate(hist_rows):
        if len(hist):
            cats, counts = np.unique(stats.category[hist], return_counts=True)
            share = dict(zip(cats, counts / counts.sum(), strict=True))
            out[i, :, 5] = [share.get(cat, 0.0) for cat in stats.category[safe[i]]]
            out[i, :, 6] = (emb[safe[i]] @ emb[hist].T).max(axis=1)
        out[i, :, 7] = np.log1p(len(hist))
    if stats.similarity is not None:
        sim = stats.similarity
        last = [h[:1] for h in hist_rows]
        for col, hist_m in (
            (8, history_matrix(hist_rows, n)),
            (10, history_matrix(hist_rows, n, decay=RECENCY_DECAY)),
            (12, history_matrix(last, n)),
        ):
            out[..., col] = _gather(hist_m @ sim, safe)
            out[..., col + 1] = _log_rank(out[..., col])
    col = FEATURES.index
    if stats.factors is not None:
        mf = np.where(cand_rows >= 0, stats.factors.scores(hist_rows, cand_rows), -1e3)
        out[..., col("mf_score")] = np.where(cand_rows >= 0, mf, 0.0)
        out[..., col("log_mf_rank")] = _log_rank(mf)
    few = (stats.popularity[safe] <= FEW_USERS).astype(np.float32)
    out[..., col("few_users")] = few
    out[..., col("few_users_model_score")] = few * out[..., col("model_score")]
    out[..., col("few_users_history_similarity")] = few * out[..., col("max_history_similarity")]
    return out


def _log_rank(values: np.ndarray) -> np.ndarray:
    """log(1 + rank) of each value within its row, best (largest) first."""
    b, c = values.shape
    order = np.argsort(-values, axis=1, kind="stable")
    out = np.empty_like(values, dtype=np.float32)
    np.put_along_axis(out, order, np.log1p(np.arange(c, dtype=np.float32))[None, :].repeat(b, 0), 1)
    return out


class Ranker:
    """Standardise, then a logistic layer; `kind="none"` ranks by the model score alone.

    `masked` features are set to zero before fitting and scoring: `masked=TEXT_FEATURES` is the
    same ranker on behaviour alone, the ablation that measures what the item text adds.
    """

    def __init__(
        self,
        kind: str = "logistic",
        params: dict[str, Any] | None = None,
        masked: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.params = params
        self.masked = tuple(masked)

    def _mask(self, x: np.ndarray) -> np.ndarray:
        if not self.masked:
            return x
        x = np.array(x, copy=True)
        x[..., [FEATURES.index(name) for name in self.masked]] = 0.0
        return x

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> Ranker:
        """Learns from (N, F) features and 0/1 labels."""
        x = self._mask(x)
        if self.kind == "none" or y.sum() == 0 or y.sum() == len(y):
            self.kind = "none"
            return self
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(0), x.std(0) + 1e-6
        model = LogisticRegression(C=1.0, max_iter=500, class_weight="balanced", random_state=seed)
        model.fit((x - mean) / scale, y)
        self.params = {
            "features": list(FEATURES),
            "mean": mean.tolist(),
            "scale": scale.tolist(),
            "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0]),
        }
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        """Scores features of shape (..., F); higher ranks first.

        A ranker fitted on fewer features (an artifact of an earlier version) scores on the
        columns it names, so it keeps ranking as it did.
        """
        if self.kind == "none" or not self.params:
            return x[..., 0]
        p = self.params
        x = self._mask(x)
        names = p.get("features") or list(FEATURES)
        if names != list(FEATURES) and set(names) <= set(FEATURES):
            x = x[..., [FEATURES.index(name) for name in names]]
        if len(p["coef"]) != x.shape[-1]:
            from shared.errors import ArtifactError

            raise ArtifactError(
                f"ranker.json has {len(p['coef'])} weights for features {p.get('features')}; this "
                f"version computes {list(FEATURES)}: retrain the artifact"
            )
        z = (x - np.asarray(p["mean"], np.float32)) / np.asarray(p["scale"], np.float32)
        return z @ np.asarray(p["coef"], np.float32) + p["intercept"]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Ranker:
        return cls(obj.get("kind", "none"), obj.get("params"))
