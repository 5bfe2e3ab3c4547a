"""Recipe choice in the core: CV or validation, the record, the logistic head, label pairs."""

from __future__ import annotations

import numpy as np
import pytest

from shared.fewshot import label_pairs
from shared.recipes import (
    MISSING_CLASS_BIAS,
    RecipeChoice,
    choose_recipe,
    fit_chosen,
    fit_logistic_head,
    small_validation,
)


def _recording(scores: dict[str, float]):
    """Candidates returning fixed scores, and the (train_idx, eval_idx) calls each one got."""
    calls: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in scores}

    def candidate(name):
        def score(fit_idx, eval_idx):
            calls[name].append((fit_idx, eval_idx))
            return scores[name]

        return score

    return {name: candidate(name) for name in scores}, calls


def test_small_validation_is_under_30_per_class_or_200_in_all():
    assert small_validation([10, 10, 10])
    assert small_validation([100, 100, 29])
    assert small_validation([60, 60, 60])  # 180 < 200
    assert not small_validation([70, 70, 70])
    assert small_validation([])


def test_a_small_validation_split_chooses_by_stratified_cv_on_the_training_rows():
    labels = np.array([0, 1, 2] * 20 + [0, 1, 2] * 3)  # 60 training rows, 9 validation rows
    train_idx, val_idx = np.arange(60), np.arange(60, 69)
    candidates, calls = _recording({"frozen": 0.7, "fewshot": 0.9, "finetune": 0.8})
    choice = choose_recipe(candidates, labels, train_idx, val_idx, n_classes=3, folds=5, seed=1)
    assert (choice.recipe, choice.method, choice.folds) == ("fewshot", "cv", 5)
    assert choice.scores == {"frozen": 0.7, "fewshot": 0.9, "finetune": 0.8}
    assert choice.fold_scores["finetune"] == [0.8] * 5
    assert (choice.train_rows, choice.val_rows) == (60, 9)
    for name in candidates:
        assert len(calls[name]) == 5
        held_out = np.concatenate([e for _, e in calls[name]])
        assert sorted(held_out.tolist()) == list(range(60))  # each training row held out once
        for fit_idx, eval_idx in calls[name]:
            assert not set(fit_idx) & set(eval_idx) and max(eval_idx) < 60  # never validation
            assert np.bincount(labels[eval_idx]).tolist() == [4, 4, 4]  # stratified


def test_a_large_validation_split_chooses_on_validation():
    labels = np.array([0, 1] * 150 + [0, 1] * 110)  # 300 training rows, 220 validation rows
    train_idx, val_idx = np.arange(300), np.arange(300, 520)
    candidates, calls = _recording({"frozen": 0.91, "finetune": 0.93})
    choice = choose_recipe(candidates, labels, train_idx, val_idx, n_classes=2, skipped={"x": "y"})
    assert (choice.recipe, choice.method, choice.folds) == ("finetune", "validation", None)
    ((fit_idx, eval_idx),) = calls["frozen"]
    np.testing.assert_array_equal(fit_idx, train_idx)
    np.testing.assert_array_equal(eval_idx, val_idx)
    record = choice.as_dict()
    assert record["scores"] == {"frozen": 0.91, "finetune": 0.93}
    assert record["skipped"] == {"x": "y"} and record["metric"] == "macro_f1"
    assert set(record) >= {"recipe", "method", "folds", "fold_scores", "seconds", "reason"}
    assert "finetune by validation" in choice.summary()


def test_ties_go_to_the_earlier_cheaper_candidate():
    labels = np.array([0, 1] * 10)
    candidates, _ = _recording({"frozen": 0.5, "finetune": 0.5})
    choice = choose_recipe(candidates, labels, np.arange(20), np.arange(0), n_classes=2)
    assert choice.recipe == "frozen" and choice.method == "cv"


def test_a_perfect_score_skips_the_costlier_candidates():
    labels = np.array([0, 1] * 10)
    candidates, calls = _recording({"frozen": 1.0, "fewshot": 1.0, "finetune": 1.0})
    choice = choose_recipe(candidates, labels, np.arange(20), np.arange(0), n_classes=2)
    assert choice.recipe == "frozen" and choice.scores == {"frozen": 1.0}
    assert set(choice.skipped) == {"fewshot", "finetune"} and not calls["finetune"]


def test_too_few_rows_to_score_falls_back_to_the_first_candidate():
    labels = np.array([0, 1])
    candidates, calls = _recording({"frozen": 0.1, "finetune": 0.9})
    choice = choose_recipe(candidates, labels, np.arange(2), np.arange(0), n_classes=2)
    assert (choice.recipe, choice.method, choice.scores) == ("frozen", "fallback", {})
    assert not calls["frozen"] and not calls["finetune"]


def test_a_fixed_choice_records_itself():
    assert RecipeChoice("frozen", "fixed").as_dict()["method"] == "fixed"


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_logistic_head_separates_a_linearly_separable_problem(n_classes):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n_classes, 8)) * 4
    labels = np.repeat(np.arange(n_classes), 30)
    features = centres[labels] + rng.normal(size=(len(labels), 8)) * 0.3 + 5.0  # off-centre
    weight, bias = fit_logistic_head(features, labels, n_classes=n_classes + 1, seed=0)
    assert weight.shape == (n_classes + 1, 8) and bias.shape == (n_classes + 1,)
    assert weight.dtype == np.float32
    logits = features @ weight.T + bias  # on the raw features: the scaling is folded in
    assert (logits.argmax(1) == labels).all()
    assert bias[n_classes] == MISSING_CLASS_BIAS and not weight[n_classes].any()


def test_label_pairs_alternate_positive_and_negative_pairs():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    pairs = label_pairs(labels, 40, seed=0)
    assert len(pairs) == 40
    for k, (i, j, target) in enumerate(pairs):
        assert i != j
        assert target == (1.0 if k % 2 == 0 else 0.0)
        assert (labels[i] == labels[j]) == (target == 1.0)
    singles = label_pairs(np.array([0, 1]), 4)  # one row per class: negatives only
    assert len(singles) == 4 and all(t == 0.0 for _, _, t in singles)


def test_over_max_cv_rows_a_small_validation_still_decides():
    labels = np.array([0, 1, 2] * 100 + [0, 1, 2] * 3)  # 300 training rows, 9 validation rows
    train_idx, val_idx = np.arange(300), np.arange(300, 309)
    candidates, calls = _recording({"frozen": 0.7, "finetune": 0.8})
    choice = choose_recipe(
        candidates, labels, train_idx, val_idx, n_classes=3, max_cv_rows=200, metric="accuracy"
    )
    assert (choice.recipe, choice.method, choice.metric) == ("finetune", "validation", "accuracy")
    assert "too many to cross-validate" in choice.reason and len(calls["frozen"]) == 1
    capped = choose_recipe(candidates, labels, train_idx, val_idx, n_classes=3, max_cv_rows=300)
    assert capped.method == "cv"  # at the cap, CV still runs


def test_fit_chosen_refits_after_cv_and_keeps_a_validation_fit():
    fits: list[str] = []

    def fit(recipe):
        fits.append(recipe)
        return f"model-{recipe}"

    after_cv = RecipeChoice("finetune", "cv")
    model, choice = fit_chosen("auto", fit, lambda: (after_cv, None), train_rows=9, val_rows=1)
    assert (model, choice, fits) == ("model-finetune", after_cv, ["finetune"])
    on_val = RecipeChoice("frozen", "validation")
    model, _ = fit_chosen("auto", fit, lambda: (on_val, "kept"), train_rows=9, val_rows=1)
    assert model == "kept" and fits == ["finetune"]  # no second fit
    model, choice = fit_chosen("frozen", fit, lambda: 1 / 0, train_rows=9, val_rows=1)
    assert (model, choice.method, choice.train_rows) == ("model-frozen", "fixed", 9)
