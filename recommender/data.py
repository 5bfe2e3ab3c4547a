"""Loading items and interactions: validation, event weights, unknown items, idempotent events."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shared.data import find_table, load_table, validate_table
from shared.errors import DataError
from shared.inputs import parse_timestamps

from .schemas import INTERACTIONS, ITEMS, EventWeights

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Validated items and interactions, plus what was reported while reading them."""

    items: pd.DataFrame
    interactions: pd.DataFrame
    report: dict[str, object] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def prepare_items(df: pd.DataFrame) -> pd.DataFrame:
    """Fills the optional item columns and builds the `text` the item tower reads."""
    df = df.copy()
    for col in ("description", "tags", "category"):
        if col not in df.columns:
            df[col] = ""
        df[col] = df[col].fillna("").astype(str)
    if "created_at" not in df.columns:
        df["created_at"] = pd.NaT
    df["created_at"] = parse_timestamps(df["created_at"])[0].to_numpy()
    df["text"] = [
        item_text(r)
        for r in df[["title", "category", "tags", "description"]].itertuples(index=False)
    ]
    return df.reset_index(drop=True)


def item_text(row: tuple) -> str:
    """`title. category. tags. description`, skipping empty parts."""
    title, category, tags, description = row
    parts = [title, category, str(tags).replace("|", ", "), description]
    return ". ".join(p.strip() for p in parts if p and str(p).strip())


def validate_items(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validates an items table (errors name file, row and column) and prepares it."""
    return prepare_items(validate_table(df, ITEMS, source=source))


def event_weights(df: pd.DataFrame, weights: EventWeights) -> np.ndarray:
    """Per-row weight: the event's configured weight, ratings scaled by `value / rating_max`."""
    base = df["event"].map(weights.model_dump()).to_numpy(dtype=np.float64, copy=True)
    if "value" in df.columns:
        value = pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=np.float64, copy=True)
        is_rating = (df["event"] == "rating").to_numpy() & ~np.isnan(value)
        base[is_rating] = weights.rating * np.clip(
            value[is_rating] / weights.rating_max, 0.05, None
        )
    return base


def prepare_interactions(
    df: pd.DataFrame,
    known: set[str],
    weights: EventWeights,
    source: str,
    on_unknown: str = "report",
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Drops duplicate event ids, separates unknown items (reported), and adds `weight`.

    Returns:
        The usable interactions sorted by time, and a report with counts and unknown item ids.

    Raises:
        DataError: when `on_unknown == "error"` and some item ids are not in the catalogue.
    """
    df = df.copy()
    if "event_id" not in df.columns:
        df["event_id"] = ""
    df["event_id"] = df["event_id"].fillna("").astype(str)
    has_id = df["event_id"] != ""
    dup = has_id & df["event_id"].duplicated(keep="first")
    unknown_mask = ~df["item_id"].isin(known)
    unknown_ids = sorted(df.loc[unknown_mask, "item_id"].unique())
    report = {
        "events_read": int(len(df)),
        "duplicate_event_ids": int(dup.sum()),
        "unknown_item_events": int(unknown_mask.sum()),
        "unknown_items": unknown_ids[:50],
    }
    if unknown_ids:
        rows = (np.flatnonzero(unknown_mask.to_numpy())[:5] + 1).tolist()
        message = (
            f"{source}: {int(unknown_mask.sum())} interaction(s) name {len(unknown_ids)} item(s) not in the "
            f"items table, e.g. {unknown_ids[:5]} (rows {rows})"
        )
        if on_unknown == "error":
            raise DataError(
                message + "; add them to the items table or set on_unknown_items=report"
            )
        log.warning(
            "%s; these interactions are left out and counted in the artifact's data report", message
        )
    df = df[~dup & ~unknown_mask].copy()
    df["weight"] = event_weights(df, weights)
    df = df.sort_values("ts", kind="stable").reset_index(drop=True)
    report["events_used"] = int(len(df))
    return df, report


def load_dataset(
    path: Path,
    weights: EventWeights,
    on_unknown: str = "report",
    columns: dict[str, str] | None = None,
) -> Dataset:
    """Reads `path/items.*` and `path/interactions.*` (a folder), validated against the schemas.

    Args:
        columns: Schema column -> the user's column, for both tables (a config's `columns`,
            e.g. `{"user_id": "visitor", "ts": "timestamp"}`); a key applies to each table that
            has that column (see `shared.data_import.map_columns`).

    Raises:
        DataError: naming the file, row and column of what is wrong, also for a table without
            rows (empty, or a header alone).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: expected a folder holding items.csv and interactions.csv")
    items_path, events_path = find_table(path, "items"), find_table(path, "interactions")
    items = prepare_items(load_table(items_path, ITEMS, columns=columns))
    raw = load_table(events_path, INTERACTIONS, columns=columns)
    interactions, report = prepare_interactions(
        raw, set(items["item_id"]), weights, str(events_path), on_unknown
    )
    return Dataset(items, interactions, report, [items_path, events_path])


def collapse(interactions: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): first time seen, strongest weight, last time seen.

    Next-item training and leave-last-out splits work on these first contacts, so a view
    followed by a purchase of the same item counts once (with the purchase's weight).
    """
    grouped = interactions.groupby(["user_id", "item_id"], sort=False).agg(
        ts=("ts", "min"), last_ts=("ts", "max"), weight=("weight", "max"), events=("event", "size")
    )
    strongest = (
        interactions.sort_values("weight", kind="stable")
        .groupby(["user_id", "item_id"])["event"]
        .last()
    )
    grouped["event"] = strongest.reindex(grouped.index).to_numpy()
    return (
        grouped.reset_index().sort_values(["ts", "user_id"], kind="stable").reset_index(drop=True)
    )
