"""HTTP routes of the bot under `/v1/customer_service/`: chat, search and KB edits.

Each route is one runtime call: the runtime owns a request (a chat message reads and writes its
session once, its embeddings batch in the shared engine); KB edits, which embed and write files,
run in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field, field_validator

from shared.inputs import Text
from shared.serving import add_tenant_routes, error_responses, get_runtime

MAX_MESSAGE_CHARS = 2000


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("text is empty")
    return value


class ChatRequest(BaseModel):
    session_id: Text = Field(min_length=1, max_length=128, examples=["c-42"])
    message: Text = Field(
        min_length=1, max_length=MAX_MESSAGE_CHARS, examples=["How do I freeze my card?"]
    )

    _check = field_validator("session_id", "message")(_nonblank)


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
    missing_slots: list[str] = Field(
        default=[], description="Slots the answer still needs; the reply asks for the first."
    )
    context_used: bool = False
    act: str | None = Field(
        None,
        description="Dialogue act the message was read as (greet, thank, goodbye, affirm, deny, "
        "human); None for a question.",
    )
    act_confidence: float | None = None


class SearchRequest(BaseModel):
    query: Text = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    k: int = Field(5, ge=1, le=50)

    _check = field_validator("query")(_nonblank)


class AnswerIn(BaseModel):
    answer_id: Text = Field(min_length=1, max_length=128)
    answer: Text = Field(min_length=1, max_length=10_000)
    title: Text = ""
    intent: Text = ""
    tags: Text = ""
    questions: list[Text] = Field(default_factory=list, max_length=200)

    _check = field_validator("answer_id", "answer")(_nonblank)


class AnswerChange(BaseModel):
    answer: Text | None = Field(None, min_length=1, max_length=10_000)
    title: Text | None = None
    intent: Text | None = None
    tags: Text | None = None
    questions: list[Text] = Field(default_factory=list, max_length=200)


class AddAnswersRequest(BaseModel):
    answers: list[AnswerIn] = Field(min_length=1, max_length=2000)


async def get_bot(
    runtime=Depends(get_runtime),
    x_tenant: str | None = Header(
        None,
        description="the tenant whose bot answers (VERTICALS_TENANTS_DIR); none: the served one",
    ),
) -> Any:
    """FastAPI dependency: the bot of the request's tenant (`X-Tenant`), the served one without.

    A tenant that is not there is a 404 naming it; one whose adapter does not fit this base, 409.
    """
    if x_tenant is None:
        return runtime
    return await asyncio.to_thread(runtime.bot_for, x_tenant)


TENANT_ERRORS = error_responses(404, 409)
"""What a route of the tenant's bot (`get_bot`) can answer for its `X-Tenant`, beside its own."""


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/chat", response_model=ChatResponse, responses=TENANT_ERRORS)
    async def chat(req: ChatRequest, runtime=Depends(get_bot)) -> dict[str, Any]:
        """Answers a message in its session (an unknown session starts a new one)."""
        return await runtime.chat_async(req.session_id, req.message)

    @router.post("/search", responses=TENANT_ERRORS)
    async def search(req: SearchRequest, runtime=Depends(get_bot)) -> dict[str, Any]:
        """The top-k knowledge-base answers for a query, with scores."""
        return await runtime.search_async(req.query, req.k)

    @router.get("/kb", responses=TENANT_ERRORS)
    def kb_summary(runtime=Depends(get_bot)) -> dict[str, Any]:
        kb = runtime.kb_snapshot()
        return {
            "version": kb.version,
            "answers": [{"answer_id": k, **v} for k, v in kb.answers.items()],
        }

    @router.post("/kb/answers", responses=TENANT_ERRORS)
    async def add_answers(req: AddAnswersRequest, runtime=Depends(get_bot)) -> dict[str, Any]:
        """Adds answers; the index updates without retraining and is persisted atomically."""
        items = [a.model_dump() for a in req.answers]
        return await asyncio.to_thread(runtime.add_answers, items)

    @router.put("/kb/answers/{answer_id:id}", responses=TENANT_ERRORS)
    async def change_answer(
        answer_id: Text, req: AnswerChange, runtime=Depends(get_bot)
    ) -> dict[str, Any]:
        return await asyncio.to_thread(runtime.update_answer, answer_id, req.model_dump())

    @router.delete("/kb/answers/{answer_id:id}", responses=TENANT_ERRORS)
    async def remove_answer(answer_id: Text, runtime=Depends(get_bot)) -> dict[str, Any]:
        return await asyncio.to_thread(runtime.remove_answer, answer_id)

    add_tenant_routes(router)
    return router
