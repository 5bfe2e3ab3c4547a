"""Train/val/test splits: drawn (stratified, group-aware), or fixed by the data's `split` column.

One rule for every vertical: rows whose `split` column says `train`, `val` or `test` go there;
the others are drawn. Fixed `val` rows turn off the drawn validation split, and fixed `test` rows
the drawn test split, so a user's official test set is measured alone, never pooled with rows
drawn from training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.errors import DataError

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class ResolvedSplits:
    """Indices of each split, and how many of each were fixed by the data or drawn.

    Attributes:
        train, val, test: Sorted row indices.
        fixed: Split -> rows the `split` column put there.
        drawn: Split -> rows drawn at random (0 for a split the data fixed).
        fractions: The fractions drawn for `val` and `test` (0 where fixed rows turned it off).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    fixed: dict[str, int]
    drawn: dict[str, int]
    fractions: dict[str, float]

    def indices(self) -> dict[str, np.ndarray]:
        """Split name -> indices."""
        return {"train": self.train, "val": self.val, "test": self.test}


def normalise_splits(values: Sequence[Any], source: Any = "<table>") -> np.ndarray:
    """The `split` column as `train`/`val`/`test`/"" (case and spaces ignored; empty = drawn).

    Raises:
        DataError: naming the values that are not a split.
    """
    out = np.array(
        ["" if v is None or v != v else str(v).strip().casefold() for v in values], dtype=object
    )
    bad = sorted(set(out) - {"", *SPLIT_NAMES})
    if bad:
        raise DataError(
            f"{source}: column 'split' has values {bad[:10]}; use train, val, test or leave empty"
        )
    return out


def resolve_splits(
    n: int,
    *,
    fixed: Sequence[Any] | None = None,
    labels: Sequence[Any] | None = None,
    groups: Sequence[Any] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> ResolvedSplits:
    """Train/val/test indices honouring a `split` column (`fixed`), drawing the rest.

    Rows with a fixed split keep it. The rows without one are drawn with :func:`split_indices`
    (stratified by `labels`, never splitting a group), except that any fixed `val` row turns the
    drawn validation split off, and any fixed `test` row the drawn test split: those rows go to
    training instead. The fractions apply to the rows without a fixed split.
    """
    marks = normalise_splits(fixed) if fixed is not None else np.full(n, "", dtype=object)
    if len(marks) != n:
        raise ValueError(f"fixed has {len(marks)} values for {n} rows")
    free = np.flatnonzero(marks == "")
    fractions = {
        "val": 0.0 if (marks == "val").any() else val_fraction,
        "test": 0.0 if (marks == "test").any() else test_fraction,
    }

    def subset(values: Sequence[Any] | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values, dtype=object)[free]

    drawn = split_indices(
        len(free),
        labels=subset(labels),
        groups=subset(groups),
        val_fraction=fractions["val"],
        test_fraction=fractions["test"],
        seed=seed,
    )
    parts = {
        name: np.sort(np.r_[np.flatnonzero(marks == name), free[idx]]).astype(int)
        for name, idx in zip(SPLIT_NAMES, drawn, strict=True)
    }
    return ResolvedSplits(
        **parts,
        fixed={name: int((marks == name).sum()) for name in SPLIT_NAMES},
        drawn={name: len(idx) for name, idx in zip(SPLIT_NAMES, drawn, strict=True)},
        fractions=fractions,
    )


def split_indices(
    n: int,
    *,
    labels: Sequence[Any] | None = None,
    groups: Sequence[Any] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/val/test indices: stratified by `labels`, and by `groups` when given.

    With `groups`, every group (a user, a patient) falls in exactly one split. Stratification is
    dropped for a label too rare to appear in every split rather than failing.
    """
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

    idx = np.arange(n)
    if n < 3:
        return idx, idx[:0], idx[:0]

    def two_way(pool: np.ndarray, fraction: float, salt: int) -> tuple[np.ndarray, np.ndarray]:
        if fraction <= 0 or len(pool) < 2:
            return pool, pool[:0]
        if groups is not None:
            g = np.asarray(groups, dtype=object)[pool]
            if labels is not None and len(set(g)) >= 2:
                y = np.asarray(labels, dtype=object)[pool]
                k = max(2, min(round(1 / fraction), len(set(g))))
                cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed + salt)
                try:
                    keep, held = next(cv.split(pool, y.astype(str), g.astype(str)))
                    return pool[keep], pool[held]
                except ValueError:
                    pass
            gss = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed + salt)
            keep, held = next(gss.split(pool, groups=g.astype(str)))
            return pool[keep], pool[held]
        y = None if labels is None else np.asarray(labels, dtype=object)[pool].astype(str)
        if y is not None:
            _, counts = np.unique(y, return_counts=True)
            if counts.min() < 2 or round(len(pool) * fraction) < len(counts):
                y = None
        keep, held = train_test_split(
            pool, test_size=fraction, random_state=seed + salt, stratify=y
        )
        return np.sort(keep), np.sort(held)

    rest, test = two_way(idx, test_fraction, 0)
    relative_val = val_fraction / max(1e-9, 1 - test_fraction)
    train, val = two_way(rest, relative_val, 1)
    return np.sort(train), np.sort(val), np.sort(test)
