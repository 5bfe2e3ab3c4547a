"""HTTP routes of the bot under `/v1/customer_service/`: chat, search and KB edits.

Each route is one runtime call: the runtime owns a request (a chat message reads and writes its
session once, its embeddings batch in the shared engine); KB edits, which embed and write files,
run in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, field_validator

from shared.serving import Utf8Route, get_runtime

MAX_MESSAGE_CHARS = 2000


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text is not valid UTF-8 ({exc.reason} at position {exc.start})"
        ) from None
    if not value.strip():
        raise ValueError("text is empty")
    return value


class ChatRequest(BaseModel):
    session_id: str = Field(min_length=1, max_length=128, examples=["c-42"])
    message: str = Field(
        min_length=1, max_length=MAX_MESSAGE_CHARS, examples=["How do I freeze my card?"]
    )

    _check = field_validator("session_id", "message")(_utf8)


class Source(BaseModel):
    answer_id: str
    title: str
    score: float
    probability: float


class ChatResponse(BaseModel):
    answer: str
    answer_id: str | None
    intent: str | None
    confidence: float
    in_scope: float | None = None
    handoff: bool
    handoff_reason: str | None
    sources: list[Source]
    slots: dict[str, str] = {}
    missing_slots: list[str] = []
    context_used: bool = False


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    k: int = Field(5, ge=1, le=50)

    _check = field_validator("query")(_utf8)


class AnswerIn(BaseModel):
    answer_id: str = Field(min_length=1, max_length=128)
    answer: str = Field(min_length=1, max_length=10_000)
    title: str = ""
    intent: str = ""
    tags: str = ""
    questions: list[str] = Field(default_factory=list, max_length=200)

    _check = field_validator("answer_id", "answer")(_utf8)


class AnswerChange(BaseModel):
    answer: str | None = Field(None, min_length=1, max_length=10_000)
    title: str | None = None
    intent: str | None = None
    tags: str | None = None
    questions: list[str] = Field(default_factory=list, max_length=200)


class AddAnswersRequest(BaseModel):
    answers: list[AnswerIn] = Field(min_length=1, max_length=2000)


def build_router() -> APIRouter:
    router = APIRouter(route_class=Utf8Route)

    @router.post("/chat", response_model=ChatResponse)
    async def chat(req: ChatRequest, runtime=Depends(get_runtime)) -> dict[str, Any]:
        """Answers a message in its session (an unknown session starts a new one)."""
        return await runtime.chat_async(req.session_id, req.message)

    @router.post("/search")
    async def search(req: SearchRequest, runtime=Depends(get_runtime)) -> dict[str, Any]:
        """The top-k knowledge-base answers for a query, with scores."""
        return await runtime.search_async(req.query, req.k)

    @router.get("/kb")
    def kb_summary(runtime=Depends(get_runtime)) -> dict[str, Any]:
        kb = runtime.kb_snapshot()
        return {
            "version": kb.version,
            "answers": [{"answer_id": k, **v} for k, v in kb.answers.items()],
        }

    @router.post("/kb/answers")
    async def add_answers(req: AddAnswersRequest, runtime=Depends(get_runtime)) -> dict[str, Any]:
        """Adds answers; the index updates without retraining and is persisted atomically."""
        items = [a.model_dump() for a in req.answers]
        return await asyncio.to_thread(runtime.add_answers, items)

    @router.put("/kb/answers/{answer_id}")
    async def change_answer(
        answer_id: str, req: AnswerChange, runtime=Depends(get_runtime)
    ) -> dict[str, Any]:
        return await asyncio.to_thread(runtime.update_answer, answer_id, req.model_dump())

    @router.delete("/kb/answers/{answer_id}")
    async def remove_answer(answer_id: str, runtime=Depends(get_runtime)) -> dict[str, Any]:
        return await asyncio.to_thread(runtime.remove_answer, answer_id)

    return router
