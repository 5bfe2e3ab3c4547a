"""Chronological splits: leave-last-out per user, or a global time cutoff. No future leaks in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Split:
    """Training interactions and held-out targets (one row per evaluated user)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


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
    by_time = lambda frame: frame.sort_values("ts", kind="stable").reset_index(drop=True)  # noqa: E731
    return Split(by_time(df[~is_test & ~is_val]), by_time(df[is_val]), by_time(df[is_test]))


def time_cutoff(collapsed: pd.DataFrame, cutoff: pd.Timestamp) -> Split:
    """Training is everything before `cutoff`; test is each user's first new item after it.

    Only users with training history are evaluated; validation is empty (tune on an earlier cutoff).
    """
    df = collapsed.sort_values("ts", kind="stable")
    train = df[df["ts"] < cutoff]
    after = df[(df["ts"] >= cutoff) & df["user_id"].isin(set(train["user_id"]))]
    test = after.groupby("user_id", sort=False).head(1)
    return Split(train.reset_index(drop=True), df.iloc[:0].copy(), test.reset_index(drop=True))


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
