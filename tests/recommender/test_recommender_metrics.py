"""Ranking metrics with several held-out items per user, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommender.metrics import (
    evaluate_scorer,
    held_out_mask,
    ranking_metrics,
    relevant_ranks,
    subset_metrics,
)
from shared.evaluation import retrieval_metrics

# Six items scored alike for both users: the order is items 0, 1, 4, 2, 5, 3.
SCORES = np.array([[0.9, 0.8, 0.6, 0.4, 0.7, 0.5]] * 2)
RELEVANT = [np.array([3, 1, 2]), np.array([5])]  # in any order
SEEN = [np.zeros(0, dtype=np.int64), np.array([0])]  # user b saw item 0: it is not ranked


def _log2(x: float) -> float:
    return math.log2(x)


def test_ranks_of_several_held_out_items_skip_seen_items():
    ranks = relevant_ranks(SCORES, RELEVANT, SEEN)
    # a: item 1 at 2, item 2 at 4, item 3 at 6 (kept in the given order); b: item 5 at 4 of 5
    np.testing.assert_array_equal(ranks, [[6, 2, 4], [4, np.inf, np.inf]])


def test_metrics_at_5_with_several_relevant_items():
    m = ranking_metrics(relevant_ranks(SCORES, RELEVANT, SEEN), ks=(5, 2))
    # user a: hits at 2 and 4 of 3 relevant; user b: one hit at 4 of 1 relevant
    ndcg_a = (1 / _log2(3) + 1 / _log2(5)) / (1 + 1 / _log2(3) + 1 / _log2(4))
    ndcg_b = 1 / _log2(5)
    assert m["precision_at_5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert m["recall_at_5"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["ndcg_at_5"] == pytest.approx((ndcg_a + ndcg_b) / 2)
    assert m["map_at_5"] == pytest.approx(((1 / 2 + 2 / 4) / 3 + (1 / 4) / 1) / 2)
    assert m["hit_rate_at_5"] == 1.0
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 4) / 2)


def test_metrics_normalise_by_min_of_relevant_and_k():
    m = ranking_metrics(relevant_ranks(SCORES, RELEVANT, SEEN), ks=(2,))
    # K=2: a has one hit at 2; its ideal DCG and MAP divisor use min(3, 2) = 2 positions
    assert m["precision_at_2"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["recall_at_2"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["ndcg_at_2"] == pytest.approx((1 / _log2(3)) / (1 + 1 / _log2(3)) / 2)
    assert m["map_at_2"] == pytest.approx((1 / 2) / 2 / 2)
    assert m["hit_rate_at_2"] == 0.5


def test_perfect_ranking_scores_one_and_ties_count_against_held_out_items():
    scores = np.array([[5.0, 4.0, 3.0, 0.0, 0.0]])
    perfect = ranking_metrics(relevant_ranks(scores, [np.array([0, 1, 2])], [[]]), ks=(3, 10))
    assert perfect["ndcg_at_3"] == pytest.approx(1.0) and perfect["map_at_10"] == pytest.approx(1)
    assert perfect["precision_at_3"] == pytest.approx(1.0)
    flat = relevant_ranks(np.zeros((1, 5)), [np.array([0, 1])], [[]])
    np.testing.assert_array_equal(flat, [[4, 5]])  # behind every other item, not first


def test_one_relevant_item_matches_the_single_target_metrics():
    ranks = np.array([1.0, 3.0, 12.0, 7.0])
    ours, theirs = ranking_metrics(ranks, ks=(5, 10)), retrieval_metrics(ranks, ks=(5, 10))
    for key in ("mrr", "recall_at_5", "ndcg_at_5", "recall_at_10", "ndcg_at_10"):
        assert ours[key] == pytest.approx(theirs[key])
    assert ours["hit_rate_at_10"] == ours["recall_at_10"]


def test_cold_subset_keeps_the_ranks_of_the_full_list():
    ranks = relevant_ranks(SCORES, RELEVANT, SEEN)
    cold = held_out_mask(RELEVANT, np.array([False, False, False, True, False, False]))
    np.testing.assert_array_equal(cold, [[True, False, False], [False, False, False]])
    m = subset_metrics(ranks, cold, ks=(10,))
    assert (m["users"], m["items"]) == (1, 1)  # user b has no cold held-out item
    assert m["recall_at_10"] == 1.0 and m["precision_at_10"] == pytest.approx(0.1)
    assert m["ndcg_at_10"] == pytest.approx(1 / _log2(7))  # item 3 sits at 6 in a's list
    assert m["map_at_10"] == pytest.approx(1 / 6)


def test_evaluate_scorer_batches_and_counts_coverage():
    metrics, ranks = evaluate_scorer(lambda pos: SCORES[pos], RELEVANT, SEEN, 6, batch=1, ks=(2,))
    np.testing.assert_array_equal(ranks, relevant_ranks(SCORES, RELEVANT, SEEN))
    assert metrics["coverage"] == pytest.approx(3 / 6)  # top 2: {0, 1} and {1, 4}
    assert metrics["recall_at_2"] == pytest.approx(1 / 6)
