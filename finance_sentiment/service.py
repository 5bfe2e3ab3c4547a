"""The vertical's routes, mounted by `shared.serving.create_app` at `/v1/finance_sentiment/`.

Routes only translate HTTP to runtime calls; scoring goes through the shared inference engine,
and every accepted item is committed to the store before the response is sent.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import HTMLResponse

from shared.inputs import Text, Timestamp
from shared.serving import PUBLIC_ROUTE, UPLOAD_RESPONSES, get_runtime, upload_slot

from .dashboard import render_page
from .monitor import parse_window
from .runtime import FinanceRuntime
from .schemas import (
    AlertsResponse,
    IngestRequest,
    IngestResponse,
    ScoreRequest,
    ScoreResponse,
    TrendsResponse,
)


def build_router() -> APIRouter:
    """`score`, `ingest`, `ingest/file`, `trends`, `alerts` and `dashboard`."""
    router = APIRouter()

    @router.post("/score", response_model=ScoreResponse)
    async def score(req: ScoreRequest, runtime: FinanceRuntime = Depends(get_runtime)) -> dict:
        """Scores a batch of texts: label, class probabilities, score = P(pos) - P(neg), topic."""
        return await runtime.score_async(req.texts)

    @router.post("/ingest", response_model=IngestResponse)
    async def ingest(req: IngestRequest, runtime: FinanceRuntime = Depends(get_runtime)) -> dict:
        """Stores, scores and monitors stream items; bad rows are rejected one by one with reasons."""
        return await runtime.ingest_async([item.model_dump() for item in req.items])

    @router.post(
        "/ingest/file",
        response_model=IngestResponse,
        dependencies=[Depends(upload_slot)],
        responses=UPLOAD_RESPONSES,
    )
    async def ingest_file(
        file: UploadFile = File(...), runtime: FinanceRuntime = Depends(get_runtime)
    ) -> dict:
        """Ingests an uploaded `.csv` or `.jsonl`; undecodable lines are rejected, the rest kept."""
        return await runtime.ingest_upload_async(file.filename or "", await file.read())

    @router.get("/trends", response_model=TrendsResponse)
    def get_trends(
        topic: Text | None = None,
        entity: Text | None = None,
        window: str = "1D",
        start: Timestamp | None = Query(None, description="first time included"),
        end: Timestamp | None = Query(None, description="first time excluded"),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> dict:
        """Per-window volume, mean score and negative share per topic (or entity), with alerts.

        At most `MAX_TREND_POINTS` points (windows x series): a longer range gets a 422 that
        suggests a window.
        """
        return {"series": runtime.trends(window, topic, entity, start, end)}

    @router.get("/alerts", response_model=AlertsResponse)
    def get_alerts(
        scope: Literal["topic", "entity"] | None = None,
        key: str | None = None,
        limit: int = Query(200, ge=1, le=5000),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> dict:
        """Alerts, newest window first."""
        return {"alerts": runtime.alerts(scope, key, limit)}

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
