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
    """A thread-safe SQLite store; one connection guarded by a lock (writes are short).

    The file is opened (and created) on first use, not when the store is made: a runtime that
    only predicts never touches the disk beside its artifact.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    @property
    def opened(self) -> bool:
        """Whether the database file has been opened (it is created on first use)."""
        return self._conn is not None

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use; callers hold `_lock`."""
        if self._conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError(f"store {self.path.name} is closed")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an acknowledged item survives power loss
            conn.executescript(SCHEMA_SQL)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn, self._closed = None, True

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

    def items(
        self,
        *,
        topic: str | None = None,
        entity: str | None = None,
        label: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of scored items (newest first) matching every filter given, and how many match.

        `start`/`end` are epoch seconds, `[start, end)`. Count and page are read together, under
        one lock, so `total` agrees with the page.
        """
        where, params = ["score IS NOT NULL"], []
        for column, value in (("topic", topic), ("entity", entity), ("label", label)):
            if value is not None:
                where, params = [*where, f"{column} = ?"], [*params, value]
        if start is not None:
            where, params = [*where, "ts_epoch >= ?"], [*params, start]
        if end is not None:
            where, params = [*where, "ts_epoch < ?"], [*params, end]
        clause = " AND ".join(where)
        page = (
            f"SELECT id, ts, source, entity, topic, text, label, score, p_negative, p_neutral,"
            f" p_positive FROM items WHERE {clause} ORDER BY ts_epoch DESC, id LIMIT ? OFFSET ?"
        )
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM items WHERE {clause}", params)
            total = int(total.fetchone()[0])
            cur = self._db.execute(page, (*params, limit, offset))
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        return rows, total

    def catalog(self) -> dict[str, Any]:
        """What is stored: the time span and count of scored items, and each topic and entity
        with its count (an entity also with its most frequent topic)."""
        span = self._query(
            "SELECT MIN(ts_epoch) AS first, MAX(ts_epoch) AS last, COUNT(*) AS n FROM items"
            " WHERE score IS NOT NULL"
        )[0]
        topics = self._query(
            "SELECT topic AS key, COUNT(*) AS items FROM items WHERE score IS NOT NULL"
            " AND topic IS NOT NULL AND topic != '' GROUP BY topic ORDER BY topic"
        )
        pairs = self._query(
            "SELECT entity, topic, COUNT(*) AS n FROM items WHERE score IS NOT NULL"
            " AND entity IS NOT NULL AND entity != '' GROUP BY entity, topic"
        )
        entities: dict[str, dict[str, Any]] = {}
        for row in sorted(pairs, key=lambda r: (r["entity"], -r["n"], str(r["topic"]))):
            entry = entities.setdefault(
                row["entity"], {"key": row["entity"], "items": 0, "topic": row["topic"]}
            )
            entry["items"] += int(row["n"])
        return {
            "first": span["first"],
            "last": span["last"],
            "items": int(span["n"]),
            "topics": [{"key": r["key"], "items": int(r["items"])} for r in topics],
            "entities": list(entities.values()),
        }

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
        self,
        scope: str | None = None,
        key: str | None = None,
        limit: int = 500,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts, newest window first, optionally for one scope and key.

        `start` and `end` (UTC) keep the alerts whose window overlaps `[start, end)`. Windows are
        stored as UTC ISO 8601 text of one format, so text order is time order.
        """
        sql, params = "SELECT * FROM alerts WHERE 1=1", []
        if scope:
            sql, params = sql + " AND scope = ?", [*params, scope]
        if key:
            sql, params = sql + " AND key = ?", [*params, key]
        if start is not None:
            sql, params = sql + " AND window_end > ?", [*params, _iso_utc(start)]
        if end is not None:
            sql, params = sql + " AND window_start < ?", [*params, _iso_utc(end)]
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


def _iso_utc(ts: pd.Timestamp) -> str:
    """`ts` as the UTC ISO 8601 text the alerts table stores (`2026-10-01T06:00:00+00:00`)."""
    ts = pd.Timestamp(ts)
    return (ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")).isoformat()
