"""Temperature scaling, the threshold for a target sensitivity, and held-out metrics."""

from __future__ import annotations

import numpy as np
import pytest

from medical_imaging.calibration import (
    choose_temperature,
    choose_threshold,
    operating_point,
    warn_if_small,
)
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


def test_a_temperature_that_overfits_a_tiny_validation_set_is_not_kept():
    # 12 images, right with margin 3 except one confidently wrong: the folds without it are
    # separable and drive T to its lower bound, which the wrong image then pays for out of fold
    labels = np.array([0, 1] * 6)
    margin = np.where(labels == 1, 3.0, -3.0)
    margin[0] = 3.0
    logits = np.stack([np.zeros(12), margin], axis=1)
    decision = choose_temperature(logits, labels)
    assert decision["kept"] is False and decision["temperature"] == 1.0
    assert decision["cv_nll_fitted"] > decision["cv_nll_uncalibrated"]
    assert decision["cv_folds"] == 5 and decision["n_val"] == 12
    assert decision["fitted_temperature"] != 1.0 and "not kept" in decision["reason"]


def test_a_temperature_that_helps_out_of_fold_is_fitted_on_all_validation_and_kept():
    logits, labels = overconfident(n=400, temperature=3.0)
    decision = choose_temperature(logits, labels)
    assert decision["kept"] is True
    assert decision["temperature"] == decision["fitted_temperature"]
    assert decision["temperature"] == pytest.approx(fit_temperature(logits, labels), rel=1e-3)
    assert decision["temperature"] == pytest.approx(3.0, rel=0.3)
    assert decision["cv_nll_fitted"] < decision["cv_nll_uncalibrated"]


def test_too_few_validation_images_keep_temperature_one():
    decision = choose_temperature(
        np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]), np.array([0, 1, 1])
    )
    assert decision["kept"] is False and decision["temperature"] == 1.0
    assert decision["cv_nll_fitted"] is None and "too few" in decision["reason"]


def test_a_small_validation_set_is_named_in_a_warning(caplog):
    labels = np.array([0] * 66 + [1] * 12)
    with caplog.at_level("WARNING", logger="medical_imaging.calibration"):
        message = warn_if_small(labels, ["benign", "malignant"])
    assert "78 images" in message and "12 of 'malignant'" in message
    assert message in caplog.text
    assert warn_if_small(np.array([0] * 60 + [1] * 40), ["a", "b"]) is None
    assert "29 of 'b'" in warn_if_small(np.array([0] * 200 + [1] * 29), ["a", "b"])
