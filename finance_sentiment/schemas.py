"""Table schemas of the input files and the service's request and response models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, StrictFloat, StrictInt

from shared.data import Column, TableSchema
from shared.inputs import Text

SENTIMENTS = ("negative", "neutral", "positive")

SPLITS = ("train", "val", "test")

LABELLED = TableSchema(
    "labelled_text",
    (
        Column("text"),
        Column("sentiment", choices=SENTIMENTS),
        Column("topic", required=False),
        # rows of one group (an article, a template) never straddle drawn splits
        Column("group", required=False, nonempty=False),
        # train|val|test fixes a row's split (empty: drawn); fixed val/test rows turn off that draw
        Column("split", required=False, nonempty=False, choices=("", *SPLITS)),
        # a gold sentiment score in [-1, 1] (empty: none); with it, train fits a score head
        Column("score", "float", required=False, nonempty=False),
    ),
    label="sentiment",
)

STREAM = TableSchema(
    "stream_items",
    (
        Column("id"),
        Column("ts", "datetime"),
        Column("source"),
        Column("text"),
        Column("entity", required=False, nonempty=False),
    ),
)


class ScoreRequest(BaseModel):
    """A batch of texts to score."""

    texts: list[Text] = Field(min_length=1, max_length=1024)


class ScoreItem(BaseModel):
    label: str
    score: float = Field(description="in [-1, 1]: P(positive) - P(negative), or the score head's")
    probs: dict[str, float]
    topic: str | None = None
    sentences: int = 1


class Rejection(BaseModel):
    row: int
    id: str | None = None
    reason: str


class ScoreResponse(BaseModel):
    """One result per input text, in order; `None` where the text was rejected (see `rejected`)."""

    results: list[ScoreItem | None]
    rejected: list[Rejection]


class StreamItem(BaseModel):
    """One stream item. Fields are checked row by row server-side (a bad row is rejected alone,
    with its reason), so `id`, `ts` and `text` may be missing here although a row needs them."""

    id: str | int | None = Field(None, description="required; an id seen before is a duplicate")
    ts: str | StrictInt | StrictFloat | None = Field(
        None, description="required; ISO 8601 (naive is UTC) or epoch seconds or milliseconds"
    )
    source: str = Field("api", description="where the item comes from, e.g. news or social")
    text: str | None = Field(None, description="required; the text to score")
    entity: str | None = Field(None, description="the company it is about (per-entity trends)")


class IngestRequest(BaseModel):
    items: list[StreamItem] = Field(min_length=1, max_length=5000)


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejection]
    alerts: list[dict[str, Any]]


class TrendsResponse(BaseModel):
    series: list[dict[str, Any]]


class AlertsResponse(BaseModel):
    alerts: list[dict[str, Any]]


class StoredItem(BaseModel):
    """A scored stream item as stored: its text, time and the monitor's reading of it."""

    id: str
    ts: str = Field(description="the item's time, UTC ISO 8601")
    source: str
    text: str
    entity: str | None = None
    topic: str | None = None
    label: str
    score: float = Field(description="in [-1, 1]: P(positive) - P(negative), or the score head's")
    probs: dict[str, float]


class ItemsResponse(BaseModel):
    """One page of the items matching the filters, newest first; `total` counts every match."""

    items: list[StoredItem]
    total: int
    limit: int
    offset: int


class KeyCount(BaseModel):
    key: str
    items: int


class EntityCount(KeyCount):
    topic: str | None = Field(None, description="the entity's most frequent topic")


class CatalogResponse(BaseModel):
    """What the store holds: the span of scored items, and every topic and entity seen."""

    first: str | None = Field(None, description="time of the earliest scored item (UTC)")
    last: str | None = Field(None, description="time of the latest scored item (UTC)")
    items: int
    topics: list[KeyCount]
    entities: list[EntityCount]
