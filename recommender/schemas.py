"""Table schemas, event weights and the training config of the recommender."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model

from shared.config import StrictModel, TrainerConfig
from shared.data import Column, TableSchema

DEFAULT_EVENT_WEIGHTS = {
    "view": 0.5,
    "click": 1.0,
    "like": 2.0,
    "share": 2.5,
    "purchase": 3.0,
    "rating": 2.0,
}
"""The events a user can log, with their default weights: the one list of events."""
EVENTS = tuple(DEFAULT_EVENT_WEIGHTS)
EventName = Literal[EVENTS]  # the request models' type of an event

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


EventWeights = create_model(
    "EventWeights",
    __base__=StrictModel,
    __doc__="How much each event says about a user's taste; `rating` is scaled by "
    "`value / rating_max`. One float field per event of `DEFAULT_EVENT_WEIGHTS`.",
    __module__=__name__,
    **{event: (float, weight) for event, weight in DEFAULT_EVENT_WEIGHTS.items()},
    rating_max=(float, 10.0),
)


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
    """The shared loop's settings with recommender defaults.

    The monitor is left unset: the evaluator's primary metric, validation Recall@10 of the two
    towers (`val_retrieval_recall_at_10`), or the training loss without validation users.
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 3e-5


class RecommenderConfig(StrictModel):
    """Training config: model, user tower, ranker, index and rules."""

    model: str = "minilm"
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
