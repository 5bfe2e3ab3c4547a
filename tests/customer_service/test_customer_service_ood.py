from __future__ import annotations

import numpy as np

from customer_service.ood import (
    Calibration,
    choose_threshold,
    fit_in_scope_weights,
    in_scope_probability,
)


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


def test_default_in_scope_weights_give_back_the_confidence():
    conf = np.array([0.05, 0.3, 0.9])
    got = in_scope_probability(conf, np.array([0.9, 0.1, 0.5]), Calibration().in_scope_weights)
    np.testing.assert_allclose(got, conf, atol=1e-9)


def test_in_scope_weights_learn_the_informative_feature():
    # In scope: near the KB (similarity ~0.7), confidence uninformative; out of scope: far (~0.2).
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.2, 0.9, size=(2, 300))
    sim_in, sim_oos = rng.normal(0.7, 0.08, 300), rng.normal(0.2, 0.08, 300)
    weights = fit_in_scope_weights(conf[0], sim_in, conf[1], sim_oos)
    assert weights[1] > 5 and abs(weights[0]) < 1
    p_in = in_scope_probability(conf[0], sim_in, weights)
    p_oos = in_scope_probability(conf[1], sim_oos, weights)
    assert (p_in > 0.5).mean() > 0.95 and (p_oos < 0.5).mean() > 0.95


def test_threshold_with_recall_confidence_keeps_the_margin_the_sample_size_needs():
    from scipy.stats import beta

    oos = np.linspace(0.0, 0.99, 100)
    plain, _ = choose_threshold(np.array([]), oos, 0.8, 0.05)
    assert (oos < plain).sum() == 80  # exactly the target on validation
    threshold, source = choose_threshold(np.array([]), oos, 0.8, 0.05, recall_confidence=0.9)
    k = int((oos < threshold).sum())
    assert beta.ppf(0.1, k, 100 - k + 1) >= 0.8 > beta.ppf(0.1, k - 1, 100 - k + 2)
    assert 84 <= k <= 88 and "lower bound at 90% confidence" in source
    # More validation questions, a tighter bound, a smaller margin.
    many = np.linspace(0.0, 0.99, 2000)
    t_many, _ = choose_threshold(np.array([]), many, 0.8, 0.05, recall_confidence=0.9)
    assert 0.8 <= (many < t_many).mean() < k / 100
    # Too few for the bound: every validation question is handed off.
    few = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    t_few, source = choose_threshold(np.array([]), few, 0.8, 0.05, recall_confidence=0.9)
    assert (few < t_few).all() and "too few" in source


def test_out_of_fold_scores_come_from_weights_fitted_without_the_question(monkeypatch):
    import customer_service.ood as ood

    rng = np.random.default_rng(0)
    in_conf, in_sim = rng.uniform(0.5, 1, 60), rng.uniform(0.6, 1, 60)
    oos_conf, oos_sim = rng.uniform(0.1, 0.8, 25), rng.uniform(0.2, 0.7, 25)
    seen: list[set[float]] = []
    fit = ood.fit_in_scope_weights

    def recording(a, b, c, d):
        seen.append(set(np.round(c, 12)))
        return fit(a, b, c, d)

    monkeypatch.setattr(ood, "fit_in_scope_weights", recording)
    oof_in, oof_oos = ood.out_of_fold_in_scope(in_conf, in_sim, oos_conf, oos_sim, folds=5)
    assert oof_in.shape == (60,) and oof_oos.shape == (25,)
    assert len(seen) == 5
    left_out = [set(np.round(oos_conf, 12)) - s for s in seen]
    assert all(4 <= len(x) <= 6 for x in left_out)  # each fold holds out a fifth
    assert set().union(*left_out) == set(np.round(oos_conf, 12))  # every question held out once
    # Too few out-of-scope questions for the folds: in-sample scores from one fit.
    seen.clear()
    few_in, few_oos = ood.out_of_fold_in_scope(in_conf, in_sim, oos_conf[:3], oos_sim[:3])
    weights = fit(in_conf, in_sim, oos_conf[:3], oos_sim[:3])
    assert len(seen) == 1 and np.allclose(
        few_oos, in_scope_probability(oos_conf[:3], oos_sim[:3], weights)
    )
