"""The `split` column rule: fixed rows keep their split, and fixed val/test turn that draw off."""

from __future__ import annotations

import numpy as np
import pytest

from shared.data import resolve_splits, split_indices
from shared.errors import DataError


def _labels(n: int) -> np.ndarray:
    return np.arange(n) % 3


def test_fixed_test_rows_are_the_whole_test_split_and_turn_its_draw_off():
    fixed = [""] * 200
    for i in range(0, 200, 10):
        fixed[i] = "test"
    split = resolve_splits(200, fixed=fixed, labels=_labels(200), test_fraction=0.2, seed=3)
    assert split.test.tolist() == list(range(0, 200, 10))  # no drawn test row at all
    assert split.drawn["test"] == 0 and split.fractions["test"] == 0.0
    assert 15 <= len(split.val) <= 21 and split.fixed["val"] == 0  # val is still drawn
    every = np.sort(np.r_[split.train, split.val, split.test])
    assert every.tolist() == list(range(200))


def test_fixed_val_rows_turn_off_the_drawn_validation_split():
    fixed = ["val" if i < 12 else "" for i in range(120)]
    split = resolve_splits(120, fixed=fixed, labels=_labels(120), seed=0)
    assert split.val.tolist() == list(range(12)) and split.drawn["val"] == 0
    assert split.fixed["test"] == 0 and split.drawn["test"] > 0
    assert not set(split.test) & set(range(12))


def test_fixed_train_rows_stay_in_training_and_the_rest_is_drawn_with_both_fractions():
    fixed = ["train"] * 50 + [""] * 100
    split = resolve_splits(150, fixed=fixed, labels=_labels(150), seed=1)
    assert set(range(50)) <= set(split.train)
    assert split.drawn["val"] == 10 and split.drawn["test"] == 10  # 10% of the 100 free rows


def test_without_a_split_column_the_draw_is_split_indices():
    labels = _labels(90)
    split = resolve_splits(90, labels=labels, seed=5)
    expected = split_indices(90, labels=labels, seed=5)
    assert all(
        np.array_equal(a, b) for a, b in zip(split.indices().values(), expected, strict=True)
    )


def test_split_values_ignore_case_and_a_wrong_one_is_named():
    split = resolve_splits(4, fixed=["TEST", " Val ", None, "train"])
    assert (split.test.tolist(), split.val.tolist()) == ([0], [1])
    with pytest.raises(DataError, match=r"\['holdout'\]"):
        resolve_splits(2, fixed=["holdout", ""])
