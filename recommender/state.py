"""The runtime's mutable state: catalogue rows, user histories, event ids, item statistics.

Rows follow the item index. Histories keep one entry per (user, item), strongest event first
seen; events logged through the service update them at once and are appended to a JSONL log.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shared.errors import InputError
from shared.inputs import parse_timestamps

from .ranker import ItemStats

VERBS = {
    "view": "viewed",
    "click": "clicked",
    "like": "liked",
    "share": "shared",
    "purchase": "bought",
    "rating": "rated",
}


@dataclass
class Entry:
    row: int
    weight: float
    ts: float
    event: str


@dataclass
class Catalogue:
    """Item metadata by row."""

    records: list[dict] = field(default_factory=list)

    @property
    def titles(self) -> list[str]:
        return [r["title"] for r in self.records]

    def categories(self) -> np.ndarray:
        return np.asarray([r.get("category") or "" for r in self.records], dtype=object)

    def upsert(self, rows: list[int], records: list[dict]) -> None:
        for row, rec in zip(rows, records, strict=True):
            if row < len(self.records):
                self.records[row] = rec
            else:
                self.records.append(rec)

    def save(self, path: Path) -> None:
        """Writes the catalogue as JSONL, into a folder the caller swaps into place whole
        (`shared.artifacts.atomic_folder`, beside the index it must agree with)."""
        with path.open("w", encoding="utf-8") as handle:
            for rec in self.records:
                handle.write(json.dumps(rec, default=str, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        with path.open(encoding="utf-8") as handle:
            return cls([json.loads(line) for line in handle if line.strip()])


class Histories:
    """Per-user interaction histories, plus the set of event ids already applied."""

    def __init__(self) -> None:
        self.users: dict[str, dict[int, Entry]] = {}
        self.event_ids: set[str] = set()

    def apply(
        self, user: str, row: int, weight: float, ts: float, event: str, event_id: str = ""
    ) -> str:
        """Applies one event; returns `duplicate`, `new_item` (first contact) or `updated`."""
        if event_id:
            if event_id in self.event_ids:
                return "duplicate"
            self.event_ids.add(event_id)
        entries = self.users.setdefault(user, {})
        entry = entries.get(row)
        if entry is None:
            entries[row] = Entry(row, weight, ts, event)
            return "new_item"
        if weight > entry.weight:
            entry.weight, entry.event = weight, event
        return "updated"

    def recent(self, user: str, limit: int | None = None) -> list[Entry]:
        """The user's items (all, or the `limit` latest), most recent first contact first."""
        entries = sorted(self.users.get(user, {}).values(), key=lambda e: e.ts, reverse=True)
        return entries[:limit]

    def seen(self, user: str) -> set[int]:
        return set(self.users.get(user, {}))


def load_interactions(path: Path) -> pd.DataFrame:
    df = pd.read_json(path, lines=True, dtype={"user_id": str, "item_id": str, "event_id": str})
    if not len(df):
        return pd.DataFrame(columns=["user_id", "item_id", "event", "ts", "weight", "event_id"])
    df["ts"] = parse_timestamps(df["ts"])[0].to_numpy()
    df["event_id"] = df.get("event_id", pd.Series([""] * len(df))).fillna("").astype(str)
    return df


def build_state(
    events: pd.DataFrame, row_of: dict[str, int], catalogue: Catalogue, trending_days: float
) -> tuple[Histories, ItemStats]:
    """Histories and item statistics from the interaction log."""
    hist = Histories()
    seconds = events["ts"].astype("int64").to_numpy() / 1e9 if len(events) else np.zeros(0)
    for user, item, weight, ts, event, eid in zip(
        events["user_id"].astype(str),
        events["item_id"],
        events["weight"],
        seconds,
        events["event"],
        events["event_id"],
        strict=True,
    ):
        row = row_of.get(item)
        if row is not None:
            hist.apply(user, row, float(weight), float(ts), event, eid)
    created = pd.Series([r.get("created_at") for r in catalogue.records])
    now = events["ts"].max() if len(events) else pd.Timestamp.now(tz="UTC")
    ids = [r["item_id"] for r in catalogue.records]
    stats = ItemStats.compute(
        ids, list(catalogue.categories()), created, events, now, trending_days
    )
    return hist, stats


_WRITER_LOCKS: dict[Path, object] = {}
_WRITER_GUARD = threading.Lock()


class WriterLock:
    """One writing process per state folder: an OS file lock taken at the first write.

    Runtimes only reading the folder (`verticals predict`, `evaluate`) never take it. Runtimes in
    one process share it; a second process that tries to write gets a 409 naming the folder and
    the holder's pid, instead of silently diverging from the first (each worker keeps its state in
    memory, so two writers would each miss the other's items and events).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.held = False

    def acquire(self) -> None:
        """Takes the lock (no wait) or raises InputError(409)."""
        if self.held:
            return
        from filelock import FileLock, Timeout

        with _WRITER_GUARD:
            lock = _WRITER_LOCKS.setdefault(
                self.folder, FileLock(self.folder / "writer.lock", thread_local=False)
            )
            try:
                lock.acquire(timeout=0)
            except Timeout:
                pid_file = self.folder / "writer.pid"
                pid = pid_file.read_text().strip() if pid_file.is_file() else "unknown"
                raise InputError(
                    f"state folder {self.folder} is written by another worker (pid {pid}); run one "
                    "worker per state folder, or give this one its own VERTICALS_DATA_DIR",
                    status_code=409,
                ) from None
            (self.folder / "writer.pid").write_text(str(os.getpid()))
            self.held = True

    def release(self) -> None:
        if self.held:
            with _WRITER_GUARD:
                _WRITER_LOCKS[self.folder].release()
                self.held = False
