"""The loaded vertical: scorer, engine, store and monitor, shared by the CLI and the service."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from shared.adapters import MIXED_BATCH_METHODS
from shared.artifacts import read_manifest
from shared.devices import resolve_device
from shared.engine import InferenceEngine
from shared.errors import ArtifactError, InputError
from shared.tenants import no_tenants

from .config import FinanceConfig
from .ingest import (
    STREAM_SUFFIXES,
    FolderWatcher,
    read_stream_file,
    validate_file_records,
    validate_rows,
)
from .lora import MANIFEST_KEY as ADAPTER_KEY
from .model import load_scorer
from .monitor import detect, dispatch, parse_window, trends
from .settings import FinanceSettings
from .store import Store
from .tenants import TenantPool, TenantText

log = logging.getLogger(__name__)


class FinanceRuntime:
    """Scores texts and runs the monitor. `predict(rows)` scores rows with a `text` field.

    The monitor's store is opened on first use (an ingest, a trends or alerts read, the folder
    watcher), and items a crash left unscored are recovered then, before anything else reads or
    writes it. Predicting alone opens no file: loading an artifact to predict leaves no
    `monitor.db` beside it.

    Args:
        artifact: Folder written by `verticals train finance_sentiment`.
        settings: Built by the core from the environment (`shared.registry.build_settings`);
            the runtime reads no environment variable itself.
    """

    def __init__(self, artifact: Path, settings: FinanceSettings) -> None:
        artifact = Path(artifact)
        self.manifest = read_manifest(artifact, vertical="finance_sentiment")
        self.cfg = FinanceConfig.model_validate(self.manifest["config"])
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.compression = (self.manifest.get("compression") or {}).get("method")
        self.adapter = self.manifest.get(ADAPTER_KEY) or None
        self.scorer = load_scorer(
            artifact, self.device, self.cfg.text, self.cfg.model, self.compression, self.adapter
        )
        self.tenants = self._tenants(artifact, settings)
        self.engine = InferenceEngine.from_settings(
            self._score_items, settings, warmup_items=[("Shares rose after strong results.", None)]
        )
        self._store = Store(settings.db_path(artifact))  # no file until first use
        self._recovered = threading.Event()
        self._open_lock = threading.Lock()
        self.webhook_url = settings.finance_webhook_url or self.cfg.alerts.webhook.url
        self.watcher = None
        if settings.finance_watch_dir is not None:
            self.watcher = FolderWatcher(
                settings.finance_watch_dir, self._store, self.ingest_file, settings.finance_poll_s
            )
            self.watcher.start()

    def _tenants(self, artifact: Path, settings: FinanceSettings) -> TenantPool | None:
        """The tenants served beside the artifact (`settings.tenants_dir`), or None.

        Raises:
            ArtifactError: when tenants are asked for but the artifact is not an adapter one.
        """
        if settings.tenants_dir is None:
            return None
        if self.adapter is None:
            raise ArtifactError(
                f"VERTICALS_TENANTS_DIR is set, so {artifact} must be an adapter artifact "
                "(trained with adapter.method=lora), whose base model serves every tenant; "
                "it is a full model"
            )
        if self.adapter["method"] not in MIXED_BATCH_METHODS:
            raise ArtifactError(
                f"VERTICALS_TENANTS_DIR is set, but {artifact} is an {self.adapter['method']} "
                f"adapter: tenants share one base through {', '.join(MIXED_BATCH_METHODS)} "
                "adapters only (peft batches several of those together); serve it alone or "
                "train the tenants with adapter.method=lora"
            )
        return TenantPool(
            self.scorer, self.adapter, settings.tenants_dir, settings.tenant_cache_size
        )

    def _score_items(self, items: list[TenantText]) -> list[dict[str, Any]]:
        """The engine's batch function: (text, tenant) items, tenants' rows batched together."""
        if self.tenants is not None:
            return self.tenants.score(items)
        named = sorted({tenant for _, tenant in items if tenant is not None})
        if named:
            raise no_tenants(named[0])
        return self.scorer.score([text for text, _ in items])

    def _score(self, texts: list[str]) -> list[dict[str, Any]]:
        """Scores texts with the served artifact (the CLI, ingest and recovery path)."""
        return self.engine.run([(text, None) for text in texts])

    def resolve_tenant(self, name: str) -> None:
        """Loads tenant `name` (if it is not), so that a bad one fails before it is queued.

        Raises:
            InputError: 404 (no such tenant, or no tenants here), 422 (bad name), 409 (its
                adapter is not for this base).
        """
        if self.tenants is None:
            raise no_tenants(name)
        self.tenants.resolve(name)

    @property
    def store(self) -> Store:
        """The monitor's store, crash-recovered (see `recover`) before its first use."""
        if not self._recovered.is_set():
            with self._open_lock:
                if not self._recovered.is_set():
                    self._recover(self._store)
                    self._recovered.set()
        return self._store

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        texts = [str(r.get("text") or "") for r in rows]
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise InputError(f"rows {empty} have an empty text", 422)
        return self._score(texts)

    def gauges(self) -> dict[str, float]:
        """Live numbers for `/metrics`: stored items."""
        return {"stored_items": self.store.count_items()}

    def info(self) -> dict[str, Any]:
        return {
            "model": self.manifest["model_name"],
            "compression": self.compression,
            "adapter": self.adapter,
            "tenants": None if self.tenants is None else self.tenants.cache.keys(),
            "metrics": self.manifest["metrics"],
            "labels": self.cfg.labels,
            "topics": self.scorer.topics,
            "store": str(self._store.path),
            "items": self.store.count_items(),
            "watch_dir": str(self.settings.finance_watch_dir or ""),
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
        return self._record(self.store, inserted, results)

    def _record(
        self, store: Store, inserted: list[dict[str, Any]], results: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        store.set_scores([r["id"] for r in inserted], results)
        scored = [
            {**row, "topic": result.get("topic")}
            for row, result in zip(inserted, results, strict=True)
        ]
        alerts = detect(store, self.cfg.alerts, scored)
        dispatch(alerts, self.webhook_url, self.cfg.alerts.webhook.timeout_s)
        return alerts

    def ingest(self, records: list[dict[str, Any]], file_rows: bool = False) -> dict[str, Any]:
        """Synchronous ingest (CLI, watcher, demo): accept, score through the engine, record."""
        step = self.accept(records, file_rows)
        results = self._score([r["text"] for r in step["inserted"]]) if step["inserted"] else []
        alerts = self.record_scores(step["inserted"], results)
        return summary(step, alerts)

    def ingest_file(self, path: Path) -> dict[str, Any]:
        records, rejected = read_stream_file(path)
        return {"file": str(path), **_with_file_rejections(self.ingest(records, True), rejected)}

    # The service's routes: one awaitable call each, the engine batching concurrent requests.
    async def score_async(self, texts: list[str], tenant: str | None = None) -> dict[str, Any]:
        """`/score`: one result per text, in order, with None (and a rejection) for empty ones;
        scored by `tenant`'s adapter, or by the served artifact for None.

        Raises:
            InputError: 422 when every text is empty; 404, 409 or 422 for a tenant that cannot
                be served (see `resolve_tenant`).
        """
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if not keep:
            raise InputError("every text is empty; send at least one non-empty text", 422)
        if tenant is not None:
            await asyncio.to_thread(self.resolve_tenant, tenant)
        results: list[dict[str, Any] | None] = [None] * len(texts)
        scored = await self.engine.submit_many([(texts[i], tenant) for i in keep])
        for i, result in zip(keep, scored, strict=True):
            results[i] = result
        rejected = [
            {"row": i + 1, "reason": "empty text"} for i, t in enumerate(texts) if not t.strip()
        ]
        return {"results": results, "rejected": rejected}

    async def ingest_async(
        self, records: list[dict[str, Any]], file_rows: bool = False
    ) -> dict[str, Any]:
        """`/ingest`: like `ingest`, every accepted item committed before the engine scores it."""
        step = await asyncio.to_thread(self.accept, records, file_rows)
        items = [(r["text"], None) for r in step["inserted"]]
        results = await self.engine.submit_many(items) if items else []
        alerts = await asyncio.to_thread(self.record_scores, step["inserted"], results)
        return summary(step, alerts)

    async def ingest_upload_async(self, name: str, data: bytes) -> dict[str, Any]:
        """`/ingest/file`: an uploaded `.csv`/`.jsonl`; undecodable lines are rejected, the rest kept.

        Raises:
            InputError: 415 for another kind of file.
        """
        suffix = Path(name).suffix.lower()
        if suffix not in STREAM_SUFFIXES:
            raise InputError(f"file {name!r} must be .csv or .jsonl", 415)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            records, rejected = await asyncio.to_thread(read_stream_file, path)
        return _with_file_rejections(await self.ingest_async(records, True), rejected)

    def trends(
        self,
        window: str,
        topic: str | None,
        entity: str | None,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        scope: str | None = None,
    ) -> list[dict[str, Any]]:
        """`/trends`: per-window series per topic or entity in `[start, end)`, with alerts."""
        parse_window(window)  # a bad window is a 400 naming it
        since, until = _epochs(start, end)
        return trends(self.store, window, topic, entity, since=since, until=until, scope=scope)

    def alerts(
        self,
        scope: str | None,
        key: str | None,
        limit: int,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> list[dict[str, Any]]:
        """`/alerts`: stored alerts whose window overlaps `[start, end)`, newest window first."""
        _epochs(start, end)
        return self.store.alerts(scope=scope, key=key, limit=limit, start=start, end=end)

    def items(self, limit: int = 50, offset: int = 0, **filters: Any) -> dict[str, Any]:
        """`/items`: a page of the scored items behind a chart point or an alert, newest first.

        Args:
            filters: `topic`, `entity`, `label`, and `start`/`end` (UTC timestamps, `[start, end)`).
        """
        since, until = _epochs(filters.pop("start", None), filters.pop("end", None))
        rows, total = self.store.items(
            start=since, end=until, limit=limit, offset=offset, **filters
        )
        return {"items": [_item(r) for r in rows], "total": total, "limit": limit, "offset": offset}

    def catalog(self) -> dict[str, Any]:
        """`/catalog`: the stored time span, topics and entities (for filters and time ranges)."""
        out = self.store.catalog()
        for name in ("first", "last"):
            t = out[name]
            out[name] = None if t is None else pd.Timestamp(t, unit="s", tz="UTC").isoformat()
        return out

    def recover(self) -> None:
        """Scores items a crash left stored but unscored, then re-evaluates their windows.

        Runs by itself when the store is first used; calling it again is harmless.
        """
        self._recover(self.store)

    def _recover(self, store: Store) -> None:
        pending = store.unscored()
        if not pending:
            return
        log.info("recovering %d stored but unscored items", len(pending))
        rows = [{**p, "ts": pd.Timestamp(p["ts"])} for p in pending]
        self._record(store, rows, self._score([r["text"] for r in rows]))

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self._store.close()


def _epochs(
    start: pd.Timestamp | None, end: pd.Timestamp | None
) -> tuple[float | None, float | None]:
    """`[start, end)` as epoch seconds; a 422 when `end` is not after `start`."""
    if start is not None and end is not None and end <= start:
        raise InputError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    since = None if start is None else pd.Timestamp(start).timestamp()
    return since, None if end is None else pd.Timestamp(end).timestamp()


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """A stored item as the API shows it: its fields, label, score and class probabilities."""
    probs = {name: row.pop(f"p_{name}") for name in ("negative", "neutral", "positive")}
    return {**row, "probs": probs}


def _with_file_rejections(out: dict[str, Any], rejected: list[dict[str, Any]]) -> dict[str, Any]:
    """An ingest summary with the lines the file reader rejected merged in, by row."""
    return {**out, "rejected": sorted(rejected + out["rejected"], key=lambda r: r["row"])}


def summary(step: dict[str, Any], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "accepted": len(step["inserted"]),
        "duplicates": step["duplicates"],
        "rejected": step["rejected"],
        "alerts": alerts,
    }


def load(artifact_dir: Path, settings: FinanceSettings) -> FinanceRuntime:
    """`Vertical.load`: the runtime for an artifact, with the settings the core built.

    Raises:
        TypeError: when `settings` is not a `FinanceSettings` (build them with
            `shared.registry.build_settings`, or load through `shared.registry.load_runtime`).
    """
    if not isinstance(settings, FinanceSettings):
        raise TypeError(
            f"finance_sentiment needs FinanceSettings, got {type(settings).__name__}: build them "
            "with shared.registry.build_settings(VERTICAL, ...) or use load_runtime"
        )
    return FinanceRuntime(Path(artifact_dir), settings)
