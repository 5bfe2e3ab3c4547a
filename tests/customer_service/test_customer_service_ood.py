from __future__ import annotations

import numpy as np

from customer_service.ood import choose_threshold, fit_temperature, softmax


def test_fit_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 5)) * 3
    true_t = 2.5
    targets = (logits / true_t + rng.gumbel(size=logits.shape)).argmax(
        1
    )  # samples of softmax(logits / T)
    assert abs(fit_temperature(logits, targets) - true_t) < 0.3


def test_softmax_ignores_padding():
    p = softmax(np.array([[1.0, 1.0, -np.inf]]))
    assert np.allclose(p, [[0.5, 0.5, 0.0]])


def test_threshold_reaches_the_target_oos_recall_on_validation():
    rng = np.random.default_rng(1)
    oos = rng.uniform(0, 0.6, size=200)
    in_scope = rng.uniform(0.4, 1.0, size=200)
    threshold, source = choose_threshold(
        in_scope, oos, target_oos_recall=0.8, fallback_handoff_rate=0.05
    )
    assert (oos < threshold).mean() >= 0.8
    assert (
        oos < threshold - 0.01
    ).mean() < 0.82  # the smallest such threshold, not a needlessly high one
    assert "oos_recall" in source


def test_threshold_without_oos_hands_off_the_fallback_share():
    in_scope = np.linspace(0, 1, 101)
    threshold, source = choose_threshold(in_scope, np.array([]), 0.8, fallback_handoff_rate=0.1)
    assert abs((in_scope < threshold).mean() - 0.1) < 0.02 and "handoff rate" in source
    assert choose_threshold(np.array([]), np.array([]), 0.8, 0.1)[0] == 0.0
