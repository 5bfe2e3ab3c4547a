"""The vertical's routes, mounted by `shared.serving.create_app` at `/v1/finance_sentiment/`.

Routes only translate HTTP to runtime calls; scoring goes through the shared inference engine,
and every accepted item is committed to the store before the response is sent.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import HTMLResponse

from shared.errors import InputError
from shared.serving import PUBLIC_ROUTE, get_runtime

from .dashboard import render_page
from .ingest import read_stream_file
from .monitor import parse_window, trends
from .runtime import FinanceRuntime, summary
from .schemas import (
    AlertsResponse,
    IngestRequest,
    IngestResponse,
    ScoreRequest,
    ScoreResponse,
    TrendsResponse,
)


async def _ingest(runtime: FinanceRuntime, records: list[dict], file_rows: bool) -> dict:
    step = await asyncio.to_thread(runtime.accept, records, file_rows)  # committed before we answer
    texts = [r["text"] for r in step["inserted"]]
    results = await runtime.engine.submit_many(texts) if texts else []
    alerts = await asyncio.to_thread(runtime.record_scores, step["inserted"], results)
    return summary(step, alerts)


def build_router() -> APIRouter:
    """`score`, `ingest`, `ingest/file`, `trends`, `alerts` and `dashboard`."""
    router = APIRouter()

    @router.post("/score", response_model=ScoreResponse)
    async def score(req: ScoreRequest, runtime: FinanceRuntime = Depends(get_runtime)) -> dict:
        """Scores a batch of texts: label, class probabilities, score = P(pos) - P(neg), topic."""
        keep = [i for i, t in enumerate(req.texts) if t.strip()]
        rejected = [
            {"row": i + 1, "reason": "empty text"} for i, t in enumerate(req.texts) if not t.strip()
        ]
        if not keep:
            raise InputError("every text is empty; send at least one non-empty text", 422)
        scored = await runtime.engine.submit_many([req.texts[i] for i in keep])
        results: list[dict | None] = [None] * len(req.texts)
        for i, result in zip(keep, scored, strict=True):
            results[i] = result
        return {"results": results, "rejected": rejected}

    @router.post("/ingest", response_model=IngestResponse)
    async def ingest(req: IngestRequest, runtime: FinanceRuntime = Depends(get_runtime)) -> dict:
        """Stores, scores and monitors stream items; bad rows are rejected one by one with reasons."""
        return await _ingest(runtime, [item.model_dump() for item in req.items], file_rows=False)

    @router.post("/ingest/file", response_model=IngestResponse)
    async def ingest_file(
        file: UploadFile = File(...), runtime: FinanceRuntime = Depends(get_runtime)
    ) -> dict:
        """Ingests an uploaded `.csv` or `.jsonl`; undecodable lines are rejected, the rest kept."""
        suffix = Path(file.filename or "").suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise InputError(f"file {file.filename!r} must be .csv or .jsonl", 415)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(await file.read())
            records, rejected = await asyncio.to_thread(read_stream_file, path)
        out = await _ingest(runtime, records, file_rows=True)
        out["rejected"] = sorted(rejected + out["rejected"], key=lambda r: r["row"])
        return out

    @router.get("/trends", response_model=TrendsResponse)
    def get_trends(
        topic: str | None = None,
        entity: str | None = None,
        window: str = "1D",
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> dict:
        """Per-window volume, mean score and negative share per topic (or entity), with alerts."""
        parse_window(window)
        return {"series": trends(runtime.store, window=window, topic=topic, entity=entity)}

    @router.get("/alerts", response_model=AlertsResponse)
    def get_alerts(
        scope: Literal["topic", "entity"] | None = None,
        key: str | None = None,
        limit: int = Query(200, ge=1, le=5000),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> dict:
        """Alerts, newest window first."""
        return {"alerts": runtime.store.alerts(scope=scope, key=key, limit=limit)}

    @router.get("/dashboard", response_class=HTMLResponse, openapi_extra=PUBLIC_ROUTE)
    def dashboard(
        window: str = "6h",
        refresh: int = Query(10, ge=1, le=3600),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> str:
        """Per-topic trend charts with alerts marked; the page refreshes itself.

        The page holds no data, so it needs no API key; when the service has one, the page asks
        for it and sends it (`X-API-Key`) on its calls to `trends` and `alerts`.
        """
        parse_window(window)
        return render_page(window, refresh)

    return router
