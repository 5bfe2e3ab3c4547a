"""Ingestion: validating rows one by one, reading CSV/JSONL files, and a watched folder.

A bad row (empty text, unparseable timestamp, undecodable bytes, missing id) is rejected with
its reason and the rest of the batch is kept.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd

from shared.errors import DataError
from shared.inputs import TIMESTAMP_RULE, parse_timestamps, text_problem

log = logging.getLogger(__name__)
STREAM_SUFFIXES = (".csv", ".jsonl")
REQUIRED = ("id", "ts", "text")


def validate_rows(
    records: list[dict[str, Any]], first_row: int = 1
) -> tuple[list[dict], list[dict]]:
    """Splits records into valid stream rows (ts as UTC Timestamp) and rejections with reasons.

    Timestamps follow the core's rule (`shared.inputs`: ISO 8601 or epoch, 1900 to 2200;
    naive is UTC). `first_row` numbers the first record (1-based).
    """
    good, rejected = [], []
    times = parse_timestamps([r.get("ts") for r in records])[0]  # the whole column at once
    for offset, (record, ts) in enumerate(zip(records, times, strict=True)):
        row_no, item_id = first_row + offset, _text(record.get("id"))
        reasons = []
        if not item_id:
            reasons.append("empty id")
        text = _text(record.get("text"))
        if not text:
            reasons.append("empty text")
        for field in ("id", "text", "source", "entity"):
            problem = text_problem(_text(record.get(field)))
            if problem is not None:
                reasons.append(f"{field} {problem}")
        if pd.isna(ts):
            reasons.append(f"bad timestamp {record.get('ts')!r}: {TIMESTAMP_RULE}")
        if reasons:
            rejected.append({"row": row_no, "id": item_id or None, "reason": "; ".join(reasons)})
            continue
        good.append(
            {
                "id": item_id,
                "ts": ts,
                "text": text,
                "source": _text(record.get("source")) or "unknown",
                "entity": _text(record.get("entity")) or None,
            }
        )
    return good, rejected


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def read_stream_file(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Reads a CSV or JSONL stream file line by line; undecodable or malformed lines are rejected.

    Returns:
        (records, rejections); records keep their 1-based data row number under `_row`.

    Raises:
        DataError: when the file is missing, of another kind, or lacks a required column.
    """
    path = Path(path)
    if path.suffix.lower() not in STREAM_SUFFIXES or not path.is_file():
        raise DataError(f"{path}: not a readable .csv or .jsonl stream file")
    lines = path.read_bytes().splitlines()
    rejected: list[dict[str, Any]] = []
    decoded: list[tuple[int, str]] = []
    is_csv = path.suffix.lower() == ".csv"
    for lineno, raw in enumerate(lines, start=1):
        row_no = lineno - 1 if is_csv else lineno
        try:
            decoded.append((row_no, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            if is_csv and lineno == 1:
                raise DataError(f"{path}: the header line is not UTF-8 text") from None
            rejected.append(
                {
                    "row": row_no,
                    "id": None,
                    "reason": f"undecodable bytes (not UTF-8 at byte {exc.start})",
                }
            )
    records = _parse_csv(path, decoded, rejected) if is_csv else _parse_jsonl(decoded, rejected)
    return records, rejected


def _parse_csv(
    path: Path, decoded: list[tuple[int, str]], rejected: list[dict]
) -> list[dict[str, Any]]:
    if not decoded:
        raise DataError(f"{path}: empty file")
    header = decoded[0][1]
    body = [(n, line) for n, line in decoded[1:] if line.strip()]
    try:
        df = pd.read_csv(
            StringIO("\n".join([header] + [line for _, line in body])),
            dtype=str,
            keep_default_na=False,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: cannot be parsed as CSV: {exc}") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing required column(s) {missing}; found {list(df.columns)}")
    records = df.to_dict(orient="records")
    numbers = (
        [n for n, _ in body] if len(body) == len(records) else list(range(1, len(records) + 1))
    )
    for record, n in zip(records, numbers, strict=True):
        record["_row"] = n
    return records


def _parse_jsonl(decoded: list[tuple[int, str]], rejected: list[dict]) -> list[dict[str, Any]]:
    records = []
    for n, line in decoded:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            rejected.append({"row": n, "id": None, "reason": f"invalid JSON: {exc.msg}"})
            continue
        if not isinstance(record, dict):
            rejected.append({"row": n, "id": None, "reason": "not a JSON object"})
            continue
        records.append({**record, "_row": n})
    return records


def validate_file_records(records: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """`validate_rows` that keeps each record's own row number from the file."""
    good, rejected = [], []
    for record in records:
        g, r = validate_rows([record], first_row=int(record.get("_row", 0)))
        good += g
        rejected += r
    return good, rejected


class FolderWatcher:
    """Polls a folder for new or changed `.csv`/`.jsonl` files and hands each to `ingest_file`.

    A file is taken once its modification time is `settle_s` old (so half-written files wait);
    files already ingested (same path, size and mtime, kept in the store) are skipped, so a
    restart does not ingest them again.
    """

    def __init__(
        self,
        folder: str | Path,
        store,
        ingest_file: Callable[[Path], dict[str, Any]],
        poll_s: float = 2.0,
        settle_s: float = 0.5,
    ) -> None:
        self.folder, self.store, self.ingest_file = Path(folder), store, ingest_file
        self.poll_s, self.settle_s = poll_s, settle_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> list[dict[str, Any]]:
        """Ingests every new settled file now; returns one summary per file."""
        summaries = []
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in self.folder.iterdir() if p.suffix.lower() in STREAM_SUFFIXES):
            stat = path.stat()
            if time.time() - stat.st_mtime < self.settle_s or self.store.file_seen(
                path, stat.st_size, stat.st_mtime
            ):
                continue
            try:
                summary = self.ingest_file(path)
            except DataError as exc:
                summary = {"file": str(path), "error": str(exc)}
                log.error("watched file rejected: %s", exc)
            self.store.mark_file(path, stat.st_size, stat.st_mtime)
            summaries.append(summary)
        return summaries

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="finance-folder-watcher", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll_once()
            except Exception:  # keep watching; the next poll retries
                log.exception("folder watcher poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
