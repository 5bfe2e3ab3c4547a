"""Temperature scaling: one copy in the core, used by every vertical."""

from __future__ import annotations

import numpy as np

from shared.calibration import fit_temperature, softmax


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


def test_fit_temperature_without_rows_keeps_the_initial_value():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int), init=0.7) == 0.7
