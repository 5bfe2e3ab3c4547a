"""HTTP routes of the recommender (mounted at `/v1/recommender/`); they only translate to the runtime."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from shared.inputs import Text, Timestamp
from shared.serving import UPLOAD_RESPONSES, error_responses, get_runtime, upload_slot

from .recommend import MAX_K, RecRequest
from .schemas import EventName


class HistoryEvent(BaseModel):
    """One past interaction of an ad-hoc history."""

    item_id: Text = Field(min_length=1)
    event: EventName = "click"
    value: float | None = None


class RecommendRequest(BaseModel):
    """An ad-hoc history (oldest first), or a user whose stored history to use, and what to
    recommend. `user_id` here reaches every id, also those no URL path can carry (`.`, `..`)."""

    user_id: Text | None = Field(None, min_length=1)
    history: list[HistoryEvent] = Field(default_factory=list, max_length=1000)
    k: int = Field(10, ge=1, le=MAX_K)
    include_categories: list[Text] | None = None
    exclude_categories: list[Text] | None = None


class ItemIn(BaseModel):
    """An item to add, or to update when its `item_id` is known."""

    item_id: Text = Field(min_length=1)
    title: Text = Field(min_length=1)
    description: Text = ""
    tags: Text = ""
    category: Text = ""
    created_at: Timestamp | None = None


class ItemsRequest(BaseModel):
    """Items to add or update, validated whole before any is indexed."""

    items: list[ItemIn] = Field(min_length=1, max_length=10_000)


class EventIn(BaseModel):
    """One interaction to log; `ts` defaults to now, `event_id` makes it idempotent."""

    user_id: Text = Field(min_length=1)
    item_id: Text = Field(min_length=1)
    event: EventName
    ts: Timestamp | None = None
    value: float | None = None
    event_id: Text | None = None


class EventsRequest(BaseModel):
    """Interactions to log, validated whole before any is applied."""

    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class RecommendedItem(BaseModel):
    """One recommendation: `score` is the ranker's (popularity for cold start), `reason` says
    why ("similar to 'X' you bought", "trending in books", ...)."""

    item_id: str
    title: str
    category: str
    score: float
    reason: str


class RecommendResponse(BaseModel):
    """Recommendations, best first; `cold_start` when they come from popular items alone."""

    user_id: str | None
    cold_start: bool
    items: list[RecommendedItem]


def build_router() -> APIRouter:
    """The recommender's routes."""
    router = APIRouter()

    @router.get("/users/{user_id:id}/recommendations", response_model=RecommendResponse)
    async def user_recommendations(
        user_id: Text,
        k: int = Query(10, ge=1, le=MAX_K),
        include: list[Text] | None = Query(None),
        exclude: list[Text] | None = Query(None),
        runtime=Depends(get_runtime),
    ) -> Any:
        """Top-k for a known or unknown user (an unknown user gets trending and popular items)."""
        return await runtime.recommend_async(RecRequest(user_id, [], k, include, exclude))

    @router.post("/recommend", response_model=RecommendResponse)
    async def recommend(req: RecommendRequest, runtime=Depends(get_runtime)) -> Any:
        """Top-k for an ad-hoc history (oldest first), else for `user_id`'s stored history."""
        history = [h.model_dump() for h in req.history]
        request = RecRequest(
            req.user_id, history, req.k, req.include_categories, req.exclude_categories
        )
        return await runtime.recommend_async(request)

    @router.get("/items/{item_id:id}/similar", responses=error_responses(404))
    async def similar(
        item_id: Text, k: int = Query(10, ge=1, le=MAX_K), runtime=Depends(get_runtime)
    ) -> Any:
        """Items with the closest text embeddings."""
        return {"item_id": item_id, "items": await asyncio.to_thread(runtime.similar, item_id, k)}

    @router.post("/items", responses=error_responses(409))
    async def add_items(req: ItemsRequest, runtime=Depends(get_runtime)) -> dict[str, Any]:
        """Adds or updates items; they are embedded, indexed and persisted before this returns."""
        records = [i.model_dump() for i in req.items]
        return await asyncio.to_thread(runtime.add_items, records, "request body")

    @router.post(
        "/items/file",
        dependencies=[Depends(upload_slot)],
        responses={**UPLOAD_RESPONSES, **error_responses(409)},
    )
    async def add_items_file(
        request: Request, format: Literal["csv", "jsonl"] = "csv", runtime=Depends(get_runtime)
    ) -> dict[str, Any]:
        """Adds items from a raw CSV or JSONL body; a malformed file is rejected whole (422)."""
        body = await request.body()
        return await asyncio.to_thread(runtime.add_items_upload, body, format)

    @router.post("/events", responses=error_responses(409))
    async def add_events(req: EventsRequest, runtime=Depends(get_runtime)) -> dict[str, int]:
        """Logs interactions; they shape the user's next recommendations. Event ids are idempotent."""
        events = [e.model_dump(mode="json") for e in req.events]
        return await asyncio.to_thread(runtime.add_events, events)

    return router
