"""Table schemas, event weights and the training config of the recommender."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config import StrictModel, TrainerConfig
from shared.data import Column, TableSchema

EVENTS = ("view", "click", "like", "share", "purchase", "rating")

ITEMS = TableSchema(
    "items",
    (
        Column("item_id", "str"),
        Column("title", "str"),
        Column("description", "str", required=False, nonempty=False),
        Column("tags", "str", required=False, nonempty=False),
        Column("category", "str", required=False, nonempty=False),
        Column("created_at", "datetime", required=False, nonempty=False),
    ),
    unique=("item_id",),
)

INTERACTIONS = TableSchema(
    "interactions",
    (
        Column("user_id", "str"),
        Column("item_id", "str"),
        Column("event", "str", choices=EVENTS),
        Column("ts", "datetime"),
        Column("value", "float", required=False, nonempty=False),
        Column("event_id", "str", required=False, nonempty=False),
    ),
)


class EventWeights(StrictModel):
    """How much each event says about a user's taste; `rating` is scaled by `value / rating_max`."""

    view: float = 0.5
    click: float = 1.0
    like: float = 2.0
    share: float = 2.5
    purchase: float = 3.0
    rating: float = 2.0
    rating_max: float = 10.0


class IndexConfig(StrictModel):
    """FAISS index choice: exact inner product for small catalogues, HNSW or IVF for large ones."""

    kind: Literal["auto", "exact", "hnsw", "ivf"] = "auto"
    exact_below: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 16


class RulesConfig(StrictModel):
    """Business rules applied after ranking."""

    exclude_seen: bool = True
    include_categories: list[str] = Field(default_factory=list)
    exclude_categories: list[str] = Field(default_factory=list)
    diversity: Literal["none", "mmr", "category_cap"] = "category_cap"
    mmr_lambda: float = 0.8
    category_cap: int = 4
    fresh_slots: int = 1
    fresh_max_interactions: int = 2


class RecTrainerConfig(TrainerConfig):
    """The shared loop's settings with recommender defaults (monitor validation Recall@10)."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 3e-5
    monitor: str = "recall_at_10"
    monitor_mode: Literal["min", "max"] = "max"


class RecommenderConfig(StrictModel):
    """Training config: model, user tower, ranker, index and rules."""

    model_name: str = "minilm"
    max_seq_length: int = 48
    max_history: int = 20
    min_history: int = 1
    hard_negatives: int = 1
    temperature: float = 0.05
    candidates: int = 100
    extra_candidates: int = 50
    cooccurrence_refresh_events: int = Field(1000, ge=1)
    ranker: Literal["logistic", "none"] = "logistic"
    trending_days: float = 7.0
    on_unknown_items: Literal["report", "error"] = "report"
    event_weights: EventWeights = EventWeights()
    index: IndexConfig = IndexConfig()
    rules: RulesConfig = RulesConfig()
    trainer: RecTrainerConfig = RecTrainerConfig()
