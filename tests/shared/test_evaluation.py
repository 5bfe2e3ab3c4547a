"""Metrics agree with hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from shared.evaluation import (
    classification_metrics,
    expected_calibration_error,
    plot_confusion_matrix,
    rank_of_target,
    ranks_from_topk,
    retrieval_metrics,
)


def test_classification_metrics_by_hand():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    m = classification_metrics(y, probs, ["neg", "pos"])
    assert m["accuracy"] == 0.75
    assert m["neg/recall"] == 0.5 and m["pos/precision"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == 1.0  # every positive scores above every negative
    assert "neg" in m["report"] and "macro avg" in m["report"]


def test_ece_perfectly_calibrated_and_overconfident():
    y = np.array([0, 1] * 50)
    assert expected_calibration_error(y, np.tile([[0.5, 0.5]], (100, 1))) == pytest.approx(0.0)
    always_class0 = np.tile([[0.99, 0.01]], (100, 1))
    assert expected_calibration_error(y, always_class0) == pytest.approx(0.49)


def test_rank_metrics():
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.2, 0.3]])
    ranks = rank_of_target(scores, [2, 2])
    assert ranks.tolist() == [2, 1]
    m = retrieval_metrics(ranks, ks=(1, 5))
    assert m["recall_at_1"] == 0.5 and m["mrr"] == pytest.approx(0.75)
    assert m["ndcg_at_5"] == pytest.approx((1 / np.log2(3) + 1) / 2)
    assert ranks_from_topk(np.array([[5, 7], [1, 2]]), [7, 9]).tolist() == [2, np.inf]


def test_rank_of_target_counts_ties_against_the_target():
    scores = np.array([[0.5, 0.5, 0.5], [0.9, 0.4, 0.4], [0.1, 0.7, 0.7]])
    # all equal: the target ranks last; a tie for second: third; a tie for first: second
    assert rank_of_target(scores, [0, 1, 2]).tolist() == [3, 3, 2]
    assert retrieval_metrics(rank_of_target(np.zeros((4, 10)), [0, 3, 5, 9]))["recall_at_5"] == 0.0
    assert rank_of_target(np.array([[np.nan, 0.2, 0.1]]), [0]).tolist() == [3]  # NaN: last


def test_confusion_png(tmp_path):
    path = plot_confusion_matrix([0, 1, 1], [0, 1, 0], ["a", "b"], tmp_path / "cm.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
