"""Temperature scaling, the threshold for a target sensitivity, and held-out metrics."""

from __future__ import annotations

import numpy as np
import pytest

from medical_imaging.calibration import choose_threshold, operating_point
from medical_imaging.metrics import heldout_metrics
from shared.calibration import fit_temperature, softmax


def overconfident(n: int = 4000, temperature: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z); the model reports z * temperature (overconfident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 2))
    labels = (rng.random(n) < softmax(z)[:, 1]).astype(int)
    return z * temperature, labels


def test_temperature_recovers_the_overconfidence_factor():
    logits, labels = overconfident(temperature=3.0)
    assert fit_temperature(logits, labels) == pytest.approx(3.0, rel=0.15)
    logits, labels = overconfident(temperature=0.5)
    assert fit_temperature(logits, labels) == pytest.approx(0.5, rel=0.15)


def test_calibration_lowers_ece():
    logits, labels = overconfident()
    temperature = fit_temperature(logits[:2000], labels[:2000])
    out = heldout_metrics(
        logits[2000:], labels[2000:], temperature=temperature, threshold=0.5, positive_index=1
    )
    assert out["ece"] < 0.5 * out["ece_uncalibrated"]
    assert out["nll"] < out["nll_uncalibrated"]
    assert 0.5 < out["auc"] < 1.0 and {"sensitivity", "specificity", "accuracy"} <= set(out)


def test_threshold_reaches_the_target_sensitivity():
    rng = np.random.default_rng(1)
    positives = rng.random(1000) < 0.3
    scores = np.clip(rng.normal(np.where(positives, 0.7, 0.4), 0.15), 0, 1)
    threshold = choose_threshold(scores, positives, "sensitivity", 0.9)
    point = operating_point(scores, positives, threshold)
    assert point["sensitivity"] >= 0.9
    # the highest such threshold: a hair higher misses the target
    assert operating_point(scores, positives, threshold + 1e-9)["sensitivity"] < 0.9
    youden = choose_threshold(scores, positives, "youden")
    assert 0.45 < youden < 0.65  # between the two class means
    j = operating_point(scores, positives, youden)
    assert j["sensitivity"] + j["specificity"] >= point["sensitivity"] + point["specificity"] - 1e-9


def test_threshold_falls_back_when_validation_has_one_class():
    assert choose_threshold(np.array([0.2, 0.8]), np.array([1, 1])) == 0.5
