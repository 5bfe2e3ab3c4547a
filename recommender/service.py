"""HTTP routes of the recommender (mounted at `/v1/recommender/`); they only translate to the runtime."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from shared.errors import DataError, InputError
from shared.serving import get_runtime

from .recommend import MAX_K
from .schemas import EVENTS

EventName = Literal["view", "click", "like", "share", "purchase", "rating"]
assert set(EVENTS) == set(EventName.__args__)  # noqa: S101 - one list of events


class HistoryEvent(BaseModel):
    item_id: str = Field(min_length=1)
    event: EventName = "click"
    value: float | None = None


class RecommendRequest(BaseModel):
    history: list[HistoryEvent] = Field(default_factory=list, max_length=1000)
    k: int = Field(10, ge=1, le=MAX_K)
    include_categories: list[str] | None = None
    exclude_categories: list[str] | None = None


class ItemIn(BaseModel):
    item_id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    description: str = ""
    tags: str = ""
    category: str = ""
    created_at: datetime | None = None


class ItemsRequest(BaseModel):
    items: list[ItemIn] = Field(min_length=1, max_length=10_000)


class EventIn(BaseModel):
    user_id: str = Field(min_length=1)
    item_id: str = Field(min_length=1)
    event: EventName
    ts: datetime | None = None
    value: float | None = None
    event_id: str | None = None


class EventsRequest(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class RecommendedItem(BaseModel):
    item_id: str
    title: str
    category: str
    score: float
    reason: str


class RecommendResponse(BaseModel):
    user_id: str | None
    cold_start: bool
    items: list[RecommendedItem]


def build_router() -> APIRouter:
    """The recommender's routes."""
    router = APIRouter()

    @router.get("/users/{user_id}/recommendations", response_model=RecommendResponse)
    async def user_recommendations(
        user_id: str,
        k: int = Query(10, ge=1, le=MAX_K),
        include: list[str] | None = Query(None),
        exclude: list[str] | None = Query(None),
        runtime=Depends(get_runtime),
    ) -> Any:
        """Top-k for a known or unknown user (an unknown user gets trending and popular items)."""
        return await runtime.engine.submit(runtime.make_request(user_id, None, k, include, exclude))

    @router.post("/recommend", response_model=RecommendResponse)
    async def recommend(req: RecommendRequest, runtime=Depends(get_runtime)) -> Any:
        """Top-k for an ad-hoc history (oldest first)."""
        history = [h.model_dump() for h in req.history]
        request = runtime.make_request(
            None, history, req.k, req.include_categories, req.exclude_categories
        )
        return await runtime.engine.submit(request)

    @router.get("/items/{item_id}/similar")
    async def similar(
        item_id: str, k: int = Query(10, ge=1, le=MAX_K), runtime=Depends(get_runtime)
    ) -> Any:
        """Items with the closest text embeddings."""
        return {"item_id": item_id, "items": await asyncio.to_thread(runtime.similar, item_id, k)}

    @router.post("/items")
    async def add_items(req: ItemsRequest, runtime=Depends(get_runtime)) -> dict[str, Any]:
        """Adds or updates items; they are embedded, indexed and persisted before this returns."""
        records = [i.model_dump() for i in req.items]
        return await asyncio.to_thread(runtime.add_items, records, "request body")

    @router.post("/items/file")
    async def add_items_file(
        request: Request, format: Literal["csv", "jsonl"] = "csv", runtime=Depends(get_runtime)
    ) -> dict[str, Any]:
        """Adds items from a raw CSV or JSONL body; a malformed file is rejected whole (422)."""
        body = await request.body()
        if not body:
            raise InputError("empty body: send the items file as the request body")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"items.{format}"
            path.write_bytes(body)
            try:
                return await asyncio.to_thread(runtime.add_items_file, path)
            except DataError as exc:
                raise InputError(str(exc).replace(str(path), f"uploaded items.{format}")) from None

    @router.post("/events")
    async def add_events(req: EventsRequest, runtime=Depends(get_runtime)) -> dict[str, int]:
        """Logs interactions; they shape the user's next recommendations. Event ids are idempotent."""
        events = [e.model_dump(mode="json") for e in req.events]
        return await asyncio.to_thread(runtime.add_events, events)

    return router
