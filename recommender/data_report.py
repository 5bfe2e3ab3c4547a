"""The recommender's data report: interactions read, dropped and why, and each split's size.

The shared shape (`shared.data_report.DataReport`) counts interactions as rows: `rows_read` is
the interactions table as read, `dropped` says why rows did not reach a split (a repeated event
id, an item missing from the catalogue, a repeat of a user's earlier contact with an item, or a
user the protocol cannot evaluate), and `splits` holds the first contacts of each split, with
the users and items in it. `classes` counts each split's rows by their strongest event.
"""

from __future__ import annotations

import pandas as pd

from shared.data_report import MIN_HELDOUT_ROWS, DataReport

from .data import Dataset, collapse
from .schemas import RecommenderConfig
from .split import Split

DUPLICATE_REASON = "repeated event_id (the first one is kept)"
UNKNOWN_REASON = "item not in the items table"
REPEAT_REASON = "repeat of a user's earlier contact with the item (collapsed into one)"
UNSEEN_REASON = "after the time cutoff, by a user with no interaction before it"


def build_data_report(cfg: RecommenderConfig, ds: Dataset, split: Split) -> DataReport:
    """The report of `ds` (as `load_dataset` read it) under `split` (as `make_split` drew it)."""
    read = dict(ds.report)
    source = str(ds.files[0].parent) if ds.files else "<dataset>"
    events_read = int(read.get("events_read", len(ds.interactions)))
    report = DataReport(
        source,
        rows_read=events_read,
        tables={"items": len(ds.items), "interactions": events_read},
    )
    report.drop(DUPLICATE_REASON, int(read.get("duplicate_event_ids", 0)))
    report.drop(UNKNOWN_REASON, int(read.get("unknown_item_events", 0)))
    contacts = len(collapse(ds.interactions)) if len(ds.interactions) else 0
    report.drop(REPEAT_REASON, len(ds.interactions) - contacts)
    parts = {"train": split.train, "val": split.val, "test": split.test}
    in_splits = sum(len(frame) for frame in parts.values())
    unsplit = UNSEEN_REASON if cfg.split == "time_cutoff" else "in no split"
    report.drop(unsplit, contacts - in_splits)
    report.add_splits({name: frame["event"].tolist() for name, frame in parts.items()})
    for name, frame in parts.items():
        report.splits[name]["users"] = int(frame["user_id"].nunique())
        report.splits[name]["items"] = int(frame["item_id"].nunique())
    unknown = list(read.get("unknown_items") or [])
    if unknown:
        report.warn(
            f"{read.get('unknown_item_events')} interaction(s) name items not in the items table "
            f"(e.g. {unknown[:5]}); they are left out"
        )
    check_heldout_users(report, cfg, parts)
    return report


def check_heldout_users(
    report: DataReport, cfg: RecommenderConfig, parts: dict[str, pd.DataFrame]
) -> None:
    """Warns when validation or test holds out items of fewer than `MIN_HELDOUT_ROWS` users."""
    more = (
        "add users with several interactions"
        if cfg.split == "leave_last_out"
        else "add users with several interactions or raise holdout_fraction"
    )
    uses = {
        "val": "the ranker and the best epoch rest on validation and are too noisy to trust",
        "test": "the test metrics are too noisy to trust",
    }
    for name, word in (("val", "validation"), ("test", "test")):
        frame = parts[name]
        users = int(frame["user_id"].nunique())
        if users >= MIN_HELDOUT_ROWS:
            continue
        if users == 0:
            size = "holds out nothing (no user has enough interactions)"
        else:
            size = (
                f"holds out {len(frame)} interaction(s) of {users} user(s) "
                f"(fewer than {MIN_HELDOUT_ROWS} users)"
            )
        report.warn(f"{word} {size}: {uses[name]}; {more}")


def report_for_manifest(report: DataReport, ds: Dataset) -> dict:
    """`report.as_dict()` with the unknown item ids (up to 50) that were left out."""
    return {**report.as_dict(), "unknown_items": list(ds.report.get("unknown_items") or [])}


def split_sizes_line(report: DataReport) -> str:
    """One line of users and items per split (the report's block shows rows only)."""
    parts = [
        f"{name} {info.get('users', 0)} users / {info.get('items', 0)} items"
        for name, info in report.splits.items()
    ]
    return "data: " + ", ".join(parts)
