"""Evaluation protocols: leave-last-out, a global time cutoff, or a random holdout per user.

Every split works on collapsed interactions (one first contact per user and item), so a held-out
item is always new to its user. Validation is held out of training the same way as test, and
the test users' histories are training plus validation (what the model knew at test time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .schemas import RecommenderConfig


@dataclass
class Split:
    """Training interactions and held-out rows (one or several per evaluated user).

    Attributes:
        protocol: What was held out, in words (reports and manifests quote it).
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    protocol: str = "leave-last-out"


def _by_time(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def leave_last_out(collapsed: pd.DataFrame) -> Split:
    """Each user's last first-contact is test, the one before it validation, the rest training.

    Users with two interactions give only a test row; users with one stay in training. Rows
    are ordered by time, so the history of a held-out row is exactly the user's earlier rows.
    """
    df = collapsed.sort_values(["user_id", "ts"], kind="stable")
    pos_from_end = df.groupby("user_id").cumcount(ascending=False).to_numpy()
    size = df.groupby("user_id")["item_id"].transform("size").to_numpy()
    is_test = (pos_from_end == 0) & (size >= 2)
    is_val = (pos_from_end == 1) & (size >= 3)
    return Split(
        _by_time(df[~is_test & ~is_val]),
        _by_time(df[is_val]),
        _by_time(df[is_test]),
        "leave-last-out: each user's last new item is test, the one before it validation",
    )


def time_cutoff(
    collapsed: pd.DataFrame, cutoff: pd.Timestamp, val_cutoff: pd.Timestamp | None = None
) -> Split:
    """Everything before `cutoff` is known; every new item a known user takes after it is test.

    With `val_cutoff` (earlier than `cutoff`), the rows between the two are validation (for the
    users known before `val_cutoff`) and training stops at `val_cutoff`; without it,
    validation is empty. Only users with earlier rows are evaluated.
    """
    df = collapsed.sort_values("ts", kind="stable")
    known = df[df["ts"] < cutoff]
    after = df[(df["ts"] >= cutoff) & df["user_id"].isin(set(known["user_id"]))]
    train, val = known, known.iloc[:0]
    if val_cutoff is not None and val_cutoff < cutoff:
        train = known[known["ts"] < val_cutoff]
        late = known[known["ts"] >= val_cutoff]
        val = late[late["user_id"].isin(set(train["user_id"]))]
        train = pd.concat([train, late[~late.index.isin(val.index)]])  # users new after it
    return Split(
        _by_time(train),
        _by_time(val),
        _by_time(after),
        f"time cutoff at {cutoff.isoformat()}: every new item a known user takes after it is test",
    )


def _holdout(df: pd.DataFrame, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Mask of rows drawn at random per user: `fraction` of each user's rows, rounded.

    Users with two or more rows give at least one and keep at least one; users with one row
    give none.
    """
    key = rng.random(len(df))
    order = np.lexsort((key, df["user_id"].to_numpy()))
    users = df["user_id"].to_numpy()[order]
    size = pd.Series(users).groupby(users).transform("size").to_numpy()
    pos = pd.Series(users).groupby(users).cumcount().to_numpy()
    take = np.clip(np.rint(fraction * size), 1, size - 1)
    mask = np.zeros(len(df), dtype=bool)
    mask[order] = (pos < take) & (size >= 2)
    return mask


def random_holdout(collapsed: pd.DataFrame, fraction: float = 0.25, seed: int = 0) -> Split:
    """A random `fraction` of each user's items is test; the same share of the rest validation.

    The protocol of the Microsoft Recommenders tables (a stratified random split per user);
    time plays no part, so a test item may be older than some training items.
    """
    rng = np.random.default_rng(seed)
    df = collapsed.reset_index(drop=True)
    is_test = _holdout(df, fraction, rng)
    rest = df[~is_test].reset_index(drop=True)
    is_val = _holdout(rest, fraction, rng)
    return Split(
        _by_time(rest[~is_val]),
        _by_time(rest[is_val]),
        _by_time(df[is_test]),
        f"random holdout: {fraction:.0%} of each user's items drawn as test (seed {seed}), "
        "the same share of the rest as validation",
    )


def make_split(cfg: RecommenderConfig, collapsed: pd.DataFrame) -> Split:
    """The split the config names (`split`, `holdout_fraction`, `split_seed`, `cutoff`).

    For `time_cutoff` without a `cutoff`, the cutoff leaves the last `holdout_fraction` of the
    interactions after it; validation is the same share of the rows before it.
    """
    if cfg.split == "random_holdout":
        return random_holdout(collapsed, cfg.holdout_fraction, cfg.split_seed)
    if cfg.split == "time_cutoff":
        q = 1.0 - cfg.holdout_fraction
        cutoff = cfg.cutoff_time() or collapsed["ts"].quantile(q)
        before = collapsed.loc[collapsed["ts"] < cutoff, "ts"]
        val_cutoff = before.quantile(q) if len(before) else None
        return time_cutoff(collapsed, cutoff, val_cutoff)
    return leave_last_out(collapsed)


def histories(train: pd.DataFrame, item_index: dict[str, int]) -> dict[str, dict[str, np.ndarray]]:
    """Per user: chronological item indices, weights and timestamps (seconds) of training rows."""
    out: dict[str, dict[str, np.ndarray]] = {}
    ts = (
        train["ts"].astype("int64").to_numpy() // 10**9
        if len(train)
        else np.zeros(0, dtype=np.int64)
    )
    items = train["item_id"].map(item_index).to_numpy()
    weights = train["weight"].to_numpy(dtype=np.float32)
    for user, rows in train.groupby("user_id", sort=False).indices.items():
        order = rows[np.argsort(ts[rows], kind="stable")]
        out[str(user)] = {
            "items": items[order].astype(np.int64),
            "weights": weights[order],
            "ts": ts[order],
        }
    return out
