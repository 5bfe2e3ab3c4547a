"""ALS and BPR of `implicit` on a pipeline split: they fit, score, and are tuned on validation only."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import VERTICAL
from recommender.data import collapse, load_dataset
from recommender.implicit_mf import split_baselines, tune, user_matrix
from recommender.pipeline import eval_set
from recommender.schemas import RecommenderConfig
from recommender.split import make_split

GRIDS = {
    "als": {"factors": (4, 16), "regularization": (0.1,), "iterations": (6,)},
    "bpr": {"factors": (8,), "regularization": (0.01,), "iterations": (5, 40)},
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    cfg = RecommenderConfig(split="random_holdout")
    ds = load_dataset(VERTICAL.example_data(tmp_path_factory.mktemp("shop")), cfg.event_weights)
    split = make_split(cfg, collapse(ds.interactions))
    return split, {item: row for row, item in enumerate(ds.items["item_id"])}


def test_implicit_baselines_fit_and_score_the_split(shop):
    split, row_of = shop
    out, tuned = split_baselines(split, row_of, len(row_of), grids=GRIDS, ks=(5, 10))
    assert set(out) == {"most_popular", "item_knn", "als", "bpr"}
    for figures in out.values():
        assert 0.0 <= figures["ndcg_at_10"] <= 1.0 and figures["precision_at_5"] <= 1.0
        assert figures["cold_users"] >= 0
    # a factorisation of the generated topics beats ranking by popularity
    assert out["als"]["ndcg_at_10"] > out["most_popular"]["ndcg_at_10"]
    assert tuned["als"].params in [
        {"factors": f, "regularization": 0.1, "iterations": 6} for f in (4, 16)
    ]
    assert len(tuned["bpr"].val_scores) == 2


def test_tuning_picks_on_validation_and_never_reads_test(shop):
    split, row_of = shop
    n = len(row_of)
    _, tuned = split_baselines(split, row_of, n, grids=GRIDS)
    val = eval_set(split.train, split.val, row_of, 20)
    direct = tune("als", user_matrix(split.train, val, row_of, n), val, n, GRIDS["als"])
    best = max(direct.val_scores, key=lambda s: s["ndcg_at_10"])
    assert direct.params == {k: best[k] for k in GRIDS["als"]} == tuned["als"].params
    assert direct.val_scores == tuned["als"].val_scores  # the scores are validation's
    # another test set (even an empty one) leaves the choice and its scores as they were
    other = type(split)(split.train, split.val, split.test.iloc[:0], split.protocol)
    _, again = split_baselines(other, row_of, n, grids=GRIDS)
    assert again["als"].val_scores == tuned["als"].val_scores
    assert again["bpr"].params == tuned["bpr"].params
    assert np.isfinite([s["ndcg_at_10"] for s in again["bpr"].val_scores]).all()
