"""Table schemas, event weights and the training config of the recommender."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import Field, create_model, field_validator

from shared.config import StrictModel, TrainerConfig
from shared.data import Column, TableSchema
from shared.data_import import ColumnMap, check_column_map
from shared.errors import InputError
from shared.inputs import parse_timestamp

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
    `max_steps` unset is bounded by the data (see `step_budget`); set it to run longer.
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 3e-5
    step_budget: int = Field(300, ge=1)
    """Most optimizer steps when `max_steps` is unset: min(one pass over the data, this).
    The value used is written into the artifact's config as `max_steps`."""


class RecommenderConfig(StrictModel):
    """Training config: model, user tower, ranker, index and rules.

    Data import: `columns` maps the items' and interactions' columns onto the schemas' names
    (`columns.user_id=visitor`, `columns.ts=timestamp`); a key applies to each table with that
    column (`item_id` to both).
    """

    model: str = "minilm"
    columns: ColumnMap = Field(default_factory=dict)
    """Schema column -> your column, for both tables, e.g. {user_id: visitor, item_id: sku,
    ts: timestamp, title: name} (empty: the files use the schemas' names)."""
    max_seq_length: int = 48
    max_history: int = 20
    min_history: int = 1
    hard_negatives: int = 1
    temperature: float = 0.05
    candidates: int = 100
    extra_candidates: int = 50
    cooccurrence_refresh_events: int = Field(1000, ge=1)
    ranker: Literal["logistic", "none"] = "logistic"
    split: Literal["leave_last_out", "time_cutoff", "random_holdout"] = "leave_last_out"
    """Evaluation protocol of `train` and `evaluate`: each user's last item, every item after a
    time cutoff, or a random share of each user's items (the Microsoft Recommenders tables)."""
    holdout_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    """Share of each user's items held out as test (and of the rest as validation) under
    random_holdout; under time_cutoff without `cutoff`, the share of interactions after it."""
    split_seed: int = 0
    """Seed of the random_holdout draw."""
    cutoff: str | None = None
    """time_cutoff: the first test time (ISO 8601 or epoch seconds/ms; None: by
    `holdout_fraction`)."""
    trending_days: float = 7.0
    on_unknown_items: Literal["report", "error"] = "report"
    event_weights: EventWeights = EventWeights()
    index: IndexConfig = IndexConfig()
    rules: RulesConfig = RulesConfig()
    trainer: RecTrainerConfig = RecTrainerConfig()

    @field_validator("columns")
    @classmethod
    def _columns_are_table_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        return check_column_map(columns, [ITEMS, INTERACTIONS])

    @field_validator("cutoff", mode="before")
    @classmethod
    def _cutoff_is_a_time(cls, value: Any) -> str | None:
        """Keeps `cutoff` as text; YAML reads `2026-01-01` as a date and `1700000000` as an int."""
        if value is None:
            return None
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        try:
            parse_timestamp(text, "cutoff")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return text

    def cutoff_time(self) -> pd.Timestamp | None:
        """`cutoff` as a UTC timestamp (None when unset)."""
        return None if self.cutoff is None else parse_timestamp(self.cutoff, "cutoff")
