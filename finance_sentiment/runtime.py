"""The loaded vertical: scorer, engine, store and monitor, shared by the CLI and the service."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.artifacts import read_manifest
from shared.devices import resolve_device
from shared.engine import InferenceEngine
from shared.errors import InputError

from .config import FinanceConfig
from .ingest import FolderWatcher, read_stream_file, validate_file_records, validate_rows
from .model import load_scorer
from .monitor import detect, dispatch
from .store import Store

log = logging.getLogger(__name__)


class MonitorSettings(BaseSettings):
    """Deployment knobs of the monitor, from `VERTICALS_FINANCE_*` environment variables.

    `db` defaults to `<artifact>/../monitor.db` (next to the artifact, never inside it).
    """

    model_config = SettingsConfigDict(env_prefix="VERTICALS_FINANCE_", extra="ignore")

    db: Path | None = None
    watch_dir: Path | None = None
    poll_s: float = 2.0
    webhook_url: str | None = None


class FinanceRuntime:
    """Scores texts and runs the monitor. `predict(rows)` scores rows with a `text` field."""

    def __init__(
        self, artifact: Path, device: str = "auto", settings: MonitorSettings | None = None
    ) -> None:
        artifact = Path(artifact)
        self.manifest = read_manifest(artifact)
        self.cfg = FinanceConfig.model_validate(self.manifest["config"])
        self.settings = settings or MonitorSettings()
        self.device = resolve_device(device)
        self.scorer = load_scorer(artifact, self.device, self.cfg.text, self.cfg.model)
        self.engine = InferenceEngine(
            lambda texts: self.scorer.score(list(texts)),
            warmup_items=["Shares rose after strong results."],
        )
        self.store = Store(self.settings.db or artifact.parent / "monitor.db")
        self.webhook_url = self.settings.webhook_url or self.cfg.monitor.webhook_url
        self.recover()
        self.watcher = None
        if self.settings.watch_dir is not None:
            self.watcher = FolderWatcher(
                self.settings.watch_dir, self.store, self.ingest_file, self.settings.poll_s
            )
            self.watcher.start()

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        texts = [str(r.get("text") or "") for r in rows]
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise InputError(f"rows {empty} have an empty text", 422)
        return self.engine.run(texts)

    def info(self) -> dict[str, Any]:
        return {
            "model": self.manifest["model_name"],
            "metrics": self.manifest["metrics"],
            "labels": self.cfg.labels,
            "topics": self.scorer.topics,
            "store": str(self.store.path),
            "items": self.store.count_items(),
            "watch_dir": str(self.settings.watch_dir or ""),
        }

    # The three ingest steps; the service awaits the engine between them, the CLI does not.
    def accept(self, records: list[dict[str, Any]], file_rows: bool = False) -> dict[str, Any]:
        """Validates and stores (committed) the good rows; returns them, duplicates and rejections."""
        good, rejected = validate_file_records(records) if file_rows else validate_rows(records)
        inserted, duplicates = self.store.add_items(good)
        return {"inserted": inserted, "duplicates": duplicates, "rejected": rejected}

    def record_scores(
        self, inserted: list[dict[str, Any]], results: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Writes scores, evaluates the alert rules on the touched windows, and dispatches alerts."""
        self.store.set_scores([r["id"] for r in inserted], results)
        scored = [
            {**row, "topic": result.get("topic")}
            for row, result in zip(inserted, results, strict=True)
        ]
        alerts = detect(self.store, self.cfg.monitor, scored)
        dispatch(alerts, self.webhook_url, self.cfg.monitor.webhook_timeout_s)
        return alerts

    def ingest(self, records: list[dict[str, Any]], file_rows: bool = False) -> dict[str, Any]:
        """Synchronous ingest (CLI, watcher, demo): accept, score through the engine, record."""
        step = self.accept(records, file_rows)
        results = self.engine.run([r["text"] for r in step["inserted"]]) if step["inserted"] else []
        alerts = self.record_scores(step["inserted"], results)
        return summary(step, alerts)

    def ingest_file(self, path: Path) -> dict[str, Any]:
        records, rejected = read_stream_file(path)
        out = self.ingest(records, file_rows=True)
        out["rejected"] = sorted(rejected + out["rejected"], key=lambda r: r["row"])
        return {"file": str(path), **out}

    def recover(self) -> None:
        """Scores items a crash left stored but unscored, then re-evaluates their windows."""
        pending = self.store.unscored()
        if not pending:
            return
        log.info("recovering %d stored but unscored items", len(pending))
        rows = [{**p, "ts": pd.Timestamp(p["ts"])} for p in pending]
        self.record_scores(rows, self.engine.run([r["text"] for r in rows]))

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.store.close()


def summary(step: dict[str, Any], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "accepted": len(step["inserted"]),
        "duplicates": step["duplicates"],
        "rejected": step["rejected"],
        "alerts": alerts,
    }


def load(artifact_dir: Path, device: str = "auto") -> FinanceRuntime:
    """`Vertical.load`: the runtime for an artifact (monitor settings from the environment)."""
    return FinanceRuntime(Path(artifact_dir), device)
