"""The vertical's routes, mounted by `shared.serving.create_app` at `/v1/finance_sentiment/`.

Routes only translate HTTP to runtime calls; scoring goes through the shared inference engine,
and every accepted item is committed to the store before the response is sent. The dashboard
reads `catalog`, `trends`, `alerts` and `items`; its charting library (plotly.js) is served by
`static/plotly.min.js`, so the page needs no network beyond the service.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, File, Header, Query, UploadFile
from fastapi.responses import HTMLResponse, Response

from shared.inputs import Text, Timestamp
from shared.serving import (
    PUBLIC_ROUTE,
    UPLOAD_RESPONSES,
    add_tenant_routes,
    error_responses,
    get_runtime,
    upload_slot,
)

from .assets import plotly_response
from .dashboard import render_page
from .monitor import parse_window
from .runtime import FinanceRuntime
from .schemas import (
    SENTIMENTS,
    AlertsResponse,
    CatalogResponse,
    IngestRequest,
    IngestResponse,
    ItemsResponse,
    ScoreRequest,
    ScoreResponse,
    TrendsResponse,
)

MAX_PAGE = 500
"""Most items one `items` page holds."""
MAX_OFFSET = 1_000_000_000
"""Largest `items` offset (SQLite takes 64-bit integers; a larger one is a 422, not a 500)."""
Scope = Literal["topic", "entity"]
Label = Literal[SENTIMENTS]


def build_router() -> APIRouter:
    """`score`, `tenants`, `ingest`, `ingest/file`, `trends`, `alerts`, `items`, `catalog`,
    `dashboard`."""
    router = APIRouter()

    @router.post("/score", response_model=ScoreResponse, responses=error_responses(404, 409))
    async def score(
        req: ScoreRequest,
        x_tenant: str | None = Header(
            None, description="the tenant whose adapter scores the texts (VERTICALS_TENANTS_DIR)"
        ),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> dict:
        """Scores a batch of texts: label, class probabilities, score = P(pos) - P(neg), topic.

        With `X-Tenant`, the tenant's adapter (and heads) on the shared base score them: 404
        for a tenant that is not there, 409 for one whose adapter is not for this base.
        """
        return await runtime.score_async(req.texts, x_tenant)

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
        topic: Text | None = Query(None, description="only this topic's items"),
        entity: Text | None = Query(None, description="only this entity's items"),
        window: str = "1D",
        start: Timestamp | None = Query(None, description="first time included"),
        end: Timestamp | None = Query(None, description="first time excluded"),
        scope: Scope | None = Query(
            None, description="one series per topic or per entity; default entity if `entity`"
        ),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> dict:
        """Per-window volume, mean score and negative share per topic (or entity), with alerts.

        At most `MAX_TREND_POINTS` points (windows x series): a longer range gets a 422 that
        suggests a window.
        """
        return {"series": runtime.trends(window, topic, entity, start, end, scope)}

    @router.get("/alerts", response_model=AlertsResponse)
    def get_alerts(
        scope: Scope | None = None,
        key: Text | None = None,
        limit: int = Query(200, ge=1, le=5000),
        start: Timestamp | None = Query(None, description="alerts whose window ends after this"),
        end: Timestamp | None = Query(None, description="alerts whose window starts before this"),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> dict:
        """Alerts whose window overlaps `[start, end)`, newest window first."""
        return {"alerts": runtime.alerts(scope, key, limit, start, end)}

    @router.get("/items", response_model=ItemsResponse)
    def get_items(
        topic: Text | None = None,
        entity: Text | None = None,
        label: Label | None = None,
        start: Timestamp | None = Query(None, description="first time included"),
        end: Timestamp | None = Query(None, description="first time excluded"),
        limit: int = Query(50, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> dict:
        """The scored items behind a chart point or an alert (text, time, label, score, topic,
        entity), newest first, a page at a time: `total` counts every match."""
        filters = {"topic": topic, "entity": entity, "label": label, "start": start, "end": end}
        return runtime.items(limit=limit, offset=offset, **filters)

    @router.get("/catalog", response_model=CatalogResponse)
    def get_catalog(runtime: FinanceRuntime = Depends(get_runtime)) -> dict:
        """The span of the scored items, and every topic and entity with its count (for the
        dashboard's filters and time range)."""
        return runtime.catalog()

    @router.get(
        "/static/plotly.min.js",
        include_in_schema=False,
        openapi_extra=PUBLIC_ROUTE,
        responses=error_responses(404),
    )
    def plotly_js(
        accept_encoding: str = Header(""), if_none_match: str | None = Header(None)
    ) -> Response:
        """plotly.js from the `plotly` package, gzipped when the client takes it, cached."""
        return plotly_response(accept_encoding, if_none_match)

    @router.get("/dashboard", response_class=HTMLResponse, openapi_extra=PUBLIC_ROUTE)
    def dashboard(
        window: str = "6h",
        refresh: int = Query(10, ge=1, le=3600),
        runtime: FinanceRuntime = Depends(get_runtime),
    ) -> str:
        """Per-topic trend charts with alerts marked; the page refreshes itself.

        The page holds no data, so it needs no API key; when the service has one, the page asks
        for it and sends it (`X-API-Key`) on its calls to `catalog`, `trends`, `alerts` and
        `items`. Filters and the time range also come from the page's query (`scope`, `topic`,
        `entity`, `start`, `end`, `min_volume`), so a view can be bookmarked.
        """
        parse_window(window)
        return render_page(window, refresh)

    add_tenant_routes(router)
    return router
