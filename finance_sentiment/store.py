"""The embedded store (SQLite, WAL): stream items, their scores, alerts and ingested files.

Items are committed before an ingest is acknowledged; scores are written afterwards, so a crash
between the two leaves unscored rows that :meth:`Store.unscored` hands back on restart.
Duplicates are dropped by id and by the hash of the normalised text.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    text_hash TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    ts_epoch REAL NOT NULL,
    source TEXT NOT NULL,
    entity TEXT,
    text TEXT NOT NULL,
    topic TEXT,
    label TEXT,
    score REAL,
    p_negative REAL,
    p_neutral REAL,
    p_positive REAL,
    ingested_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_ts ON items (ts_epoch);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    value REAL NOT NULL,
    baseline REAL NOT NULL,
    z REAL NOT NULL,
    volume INTEGER NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (rule, scope, key, window_start)
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    ingested_at REAL NOT NULL
);
"""
ALERT_COLUMNS = (
    "rule",
    "scope",
    "key",
    "window_start",
    "window_end",
    "detected_at",
    "value",
    "baseline",
    "z",
    "volume",
    "message",
)


def text_hash(text: str) -> str:
    """SHA-256 of the text, lower-cased with whitespace collapsed (so trivial reposts match)."""
    return hashlib.sha256(" ".join(text.lower().split()).encode("utf-8")).hexdigest()


class Store:
    """A thread-safe SQLite store; one connection guarded by a lock (writes are short)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged item survives power loss
        self._db.executescript(SCHEMA_SQL)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_items(self, rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """Inserts new items in one transaction; returns (inserted rows, number of duplicates).

        Each row has `id`, `ts` (a UTC pandas Timestamp), `source`, `text` and optional `entity`.
        """
        inserted, duplicates, now = [], 0, time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO items (id, text_hash, ts, ts_epoch, source, entity, text, ingested_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            row["id"],
                            text_hash(row["text"]),
                            row["ts"].isoformat(),
                            row["ts"].timestamp(),
                            row["source"],
                            row.get("entity") or None,
                            row["text"],
                            now,
                        ),
                    )
                    if cur.rowcount == 1:
                        inserted.append(row)
                    else:
                        duplicates += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return inserted, duplicates

    def set_scores(self, ids: list[str], results: list[dict[str, Any]]) -> None:
        """Writes each item's label, score, class probabilities and topic."""
        params = [
            (
                r["label"],
                r["score"],
                r["probs"]["negative"],
                r["probs"]["neutral"],
                r["probs"]["positive"],
                r.get("topic"),
                item_id,
            )
            for item_id, r in zip(ids, results, strict=True)
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # one transaction (one fsync) per batch
            try:
                self._db.executemany(
                    "UPDATE items SET label=?, score=?, p_negative=?, p_neutral=?, p_positive=?,"
                    " topic=? WHERE id=?",
                    params,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def unscored(self, limit: int = 10_000) -> list[dict[str, Any]]:
        """Items stored but not yet scored (left by a crash between storing and scoring)."""
        return self._query(
            "SELECT id, text, ts, entity FROM items WHERE score IS NULL ORDER BY ts_epoch LIMIT ?",
            (limit,),
        )

    def scored_frame(self, start: float | None = None, end: float | None = None) -> pd.DataFrame:
        """Scored items with `ts_epoch` in [start, end) as a DataFrame (ts as UTC timestamps)."""
        sql = (
            "SELECT id, ts_epoch, source, entity, topic, label, score, text FROM items"
            " WHERE score IS NOT NULL AND ts_epoch >= ? AND ts_epoch < ? ORDER BY ts_epoch"
        )
        with self._lock:
            df = pd.read_sql_query(sql, self._db, params=(start or -1e18, end or 1e18))
        df["ts"] = pd.to_datetime(df["ts_epoch"], unit="s", utc=True)
        return df

    def first_epoch(self) -> float:
        """Time of the earliest scored item (where baselines start); 0 when there is none."""
        return float(
            self._query("SELECT MIN(ts_epoch) AS t FROM items WHERE score IS NOT NULL")[0]["t"]
            or 0.0
        )

    def window_counts(
        self, scope: str, key: str, width_s: float, lo: int, hi: int
    ) -> dict[int, tuple[int, int]]:
        """Window index -> (volume, negatives) of scored items of one topic or entity, windows [lo, hi)."""
        column = {"topic": "topic", "entity": "entity"}[
            scope
        ]  # never interpolate user text into SQL
        rows = self._query(
            f"SELECT CAST(ts_epoch / ? AS INTEGER) AS b, COUNT(*) AS n, SUM(label = 'negative') AS k FROM items"
            f" WHERE {column} = ? AND score IS NOT NULL AND ts_epoch >= ? AND ts_epoch < ? GROUP BY b",
            (width_s, key, lo * width_s, hi * width_s),
        )
        return {int(r["b"]): (int(r["n"]), int(r["k"])) for r in rows}

    def window_items(
        self, scope: str, key: str, start: float, end: float
    ) -> list[tuple[float, str]]:
        """(ts_epoch, label) of the scored items of one topic or entity in [start, end), in time order."""
        column = {"topic": "topic", "entity": "entity"}[scope]
        rows = self._query(
            f"SELECT ts_epoch, label FROM items WHERE {column} = ? AND score IS NOT NULL"
            f" AND ts_epoch >= ? AND ts_epoch < ? ORDER BY ts_epoch",
            (key, start, end),
        )
        return [(float(r["ts_epoch"]), str(r["label"])) for r in rows]

    def count_items(self) -> int:
        return int(self._query("SELECT COUNT(*) AS n FROM items")[0]["n"])

    def add_alert(self, alert: dict[str, Any]) -> bool:
        """Stores an alert; False when the same rule already fired for that key and window."""
        with self._lock:
            cur = self._db.execute(
                f"INSERT OR IGNORE INTO alerts ({', '.join(ALERT_COLUMNS)}, created_at)"
                f" VALUES ({', '.join('?' * len(ALERT_COLUMNS))}, ?)",
                (*(alert[c] for c in ALERT_COLUMNS), time.time()),
            )
            return cur.rowcount == 1

    def alerts(
        self, scope: str | None = None, key: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Alerts, newest window first, optionally for one scope and key."""
        sql, params = "SELECT * FROM alerts WHERE 1=1", []
        if scope:
            sql, params = sql + " AND scope = ?", [*params, scope]
        if key:
            sql, params = sql + " AND key = ?", [*params, key]
        return self._query(sql + " ORDER BY window_start DESC, id DESC LIMIT ?", (*params, limit))

    def file_seen(self, path: Path, size: int, mtime: float) -> bool:
        rows = self._query("SELECT size, mtime FROM files WHERE path = ?", (str(path),))
        return bool(rows) and rows[0]["size"] == size and rows[0]["mtime"] == mtime

    def mark_file(self, path: Path, size: int, mtime: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                (str(path), size, mtime, time.time()),
            )

    def _query(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
