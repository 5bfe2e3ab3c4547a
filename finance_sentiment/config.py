"""The training and monitoring configuration of the finance_sentiment vertical."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from shared.adapters import AdapterConfig, lora_recipe
from shared.config import StrictModel, TrainerConfig
from shared.data_import import ColumnMap, LabelMap, check_column_map
from shared.recipes import FewShotConfig, Recipe

from .schemas import LABELLED, SENTIMENTS

DEFAULT_TOPICS = {
    "banking": "banks, lending, loans, deposits, credit, interest rates and central bank policy",
    "energy": "oil, gas, power utilities, renewable energy, pipelines and fuel prices",
    "technology": "software, chips, semiconductors, cloud computing, devices and internet companies",
    "retail": "shops, consumer spending, e-commerce, supermarkets and store sales",
    "pharma": "drugs, medicines, clinical trials, regulators approving treatments and biotech",
}


class TextConfig(StrictModel):
    """How texts are tokenised, and how long texts are split and aggregated.

    Long-text rule: a text longer than `long_text_chars` with several sentences is split into
    sentences; each sentence is scored; the text's class probabilities are the average of its
    sentences' probabilities weighted by `1 - P(neutral) + 0.05`, so a strongly opinionated
    sentence is not diluted by neutral boilerplate. Score = P(positive) - P(negative), or the
    score head of the averaged probabilities when the training table had gold scores.
    """

    max_length: int = 64
    long_text_chars: int = 280
    max_sentences: int = 64


class NegativeShareRule(StrictModel):
    """`negative_share`: the window's negative count against the baseline's negative share.

    Binomial z of the negative count k of n items against the baseline's pooled negative share
    p0, `(k - n p0) / sqrt(n p0 (1 - p0))`; fires when z >= `z_threshold`, the window holds at
    least `min_volume` items and a share of at least `min_share` of them is negative.
    """

    z_threshold: float = 3.0
    min_volume: int = 5
    min_share: float = 0.4


class VolumeRule(StrictModel):
    """`volume`: the window's item count against the baseline volumes.

    `z = (n - mean) / max(std, sqrt(mean), min_std)` over the baseline windows' volumes (counts
    are small and Poisson-noisy); fires when z >= `z_threshold` and n >= `min_volume`.
    """

    enabled: bool = True
    z_threshold: float = 4.5
    min_volume: int = 10
    min_std: float = 1.0


class WebhookConfig(StrictModel):
    """Where alerts are POSTed (`VERTICALS_FINANCE_WEBHOOK_URL` overrides `url`)."""

    url: str | None = None
    timeout_s: float = 2.0


class AlertsConfig(StrictModel):
    """Windows and alert rules of the stream monitor.

    Rolling baseline: the previous `baseline_windows` windows of the same topic or entity (at
    least `min_baseline_windows` of history). Each rule (`negative_share`, `volume`) is a z-score
    against that baseline. A rule that held does not alert again for the same key within the
    next `cooldown_windows` windows. The alert time is the first item of the window at which the
    rule held (what a live stream sees).
    """

    window: str = "6h"
    baseline_windows: int = 28
    min_baseline_windows: int = 4
    cooldown_windows: int = 4
    negative_share: NegativeShareRule = NegativeShareRule()
    volume: VolumeRule = VolumeRule()
    webhook: WebhookConfig = WebhookConfig()


class FinanceTrainerConfig(TrainerConfig):
    """The shared loop's settings with this vertical's defaults (heads 1e-3, body 5e-5).

    The best epoch is the one with the highest validation macro-F1 (the evaluator's primary
    metric), or the lowest training loss when there is no validation data.
    """

    batch_size: int = 16
    lr: float = 1e-3
    backbone_lr: float | None = 5e-5


class FinanceConfig(StrictModel):
    """Training config: the model, texts, topics and alert rules (saved in the artifact).

    `trainer.lr` is the heads' learning rate, `trainer.backbone_lr` the transformer body's.
    `topics` maps a topic name to a description: used for zero-shot topic assignment (embedding
    similarity) when the training data has no `topic` column.

    Data import: `columns` maps the table's columns onto `text`, `sentiment`, `topic`, `group`
    and `split` (`columns.text=headline`); `label_map` maps the file's labels onto the
    sentiments (`label_map.0=negative`; labels also match case-insensitively). A `split` column
    (`train|val|test`, empty: drawn) fixes rows' splits; fixed `val` or `test` rows turn off the
    drawn split of that kind, the others are drawn with `val_fraction` and `test_fraction`.

    `recipe` chooses how the model is trained (see `shared.recipes`): `finetune` trains body and
    heads with the shared loop; `frozen` keeps the body and fits logistic-regression heads on its
    mean-pooled vectors; `fewshot` first tunes the body contrastively on label pairs (`fewshot`);
    `auto` scores those on validation, or by `recipe_folds`-fold CV on the training rows when
    validation is small, and records the choice in the manifest under `recipe`.

    `adapter` (`{method: lora, r: 8, alpha: 16, dropout: 0.1}`) fine-tunes through LoRA: the
    body stays frozen, a low-rank adapter and the heads train (at `trainer.lr`), and the
    artifact holds only those plus the base model's name and weights hash (see `lora.py`), so
    many customers' adapters can share one base in a service. It is the `finetune` recipe
    with an adapter: `recipe` must be `finetune` or `auto` (which then fine-tunes through the
    adapter rather than weighing recipes: the adapter is asked for its size, not its score).
    """

    recipe: Recipe = "auto"
    """auto (chosen by the data), frozen (body kept, logistic heads), fewshot, or finetune;
    `lora` is finetune through a LoRA adapter (`adapter`, default r=8)."""
    recipe_folds: int = Field(5, ge=2)
    """k of the stratified k-fold CV that `auto` uses when validation is small."""
    fewshot: FewShotConfig = FewShotConfig()
    """Pairs, epochs and learning rate of the `fewshot` recipe's contrastive tuning."""
    adapter: AdapterConfig | None = None
    """Fine-tune through a LoRA adapter ({method: lora, r: 8, alpha: 16, dropout: 0.1,
    target_modules: null}); null: the whole body trains."""

    @model_validator(mode="before")
    @classmethod
    def _recipe_lora(cls, data: Any) -> Any:
        return lora_recipe(data)  # recipe=lora: finetune through a LoRA adapter

    model: str = "minilm"
    """Pretrained body: minilm (packaged, offline), a hub id, or a local transformers folder."""
    labels: list[str] = Field(default_factory=lambda: list(SENTIMENTS))
    """The sentiment head's classes in output order: the `sentiment` column's three values."""
    topic_loss_weight: float = 0.5
    """Weight of the topic head's loss beside sentiment's (when the data has topics)."""
    topics: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TOPICS))
    """Topic name -> description, for zero-shot topics when the data has no `topic` column."""

    columns: ColumnMap = Field(default_factory=dict)
    """Schema column -> your column, e.g. {text: headline, sentiment: label} (empty: same names)."""
    label_map: LabelMap = Field(default_factory=dict)
    """Your label -> a sentiment, e.g. {"0": negative, "1": neutral, "2": positive}."""
    val_fraction: float = Field(0.1, ge=0, lt=0.5)
    """Share of the rows without a `split` drawn for validation (none when val rows are fixed)."""
    test_fraction: float = Field(0.1, ge=0, lt=0.5)
    """Share of the rows without a `split` drawn for test (none when test rows are fixed)."""

    @field_validator("columns")
    @classmethod
    def _columns_are_schema_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        return check_column_map(columns, [LABELLED])

    @field_validator("label_map")
    @classmethod
    def _labels_map_onto_sentiments(cls, label_map: dict[str, str]) -> dict[str, str]:
        wrong = sorted({v for v in label_map.values() if v.casefold() not in SENTIMENTS})
        if wrong:
            raise ValueError(f"maps onto {wrong}, which are not sentiments {list(SENTIMENTS)}")
        return {k: v.casefold() for k, v in label_map.items()}

    @field_validator("labels")
    @classmethod
    def _labels_are_the_schema_sentiments(cls, labels: list[str]) -> list[str]:
        if sorted(labels) != sorted(SENTIMENTS):
            raise ValueError(
                f"must list the sentiment column's values {list(SENTIMENTS)} once each, in the "
                f"head's order; got {labels}"
            )
        return labels

    @model_validator(mode="after")
    def _adapter_trains_by_finetune(self) -> FinanceConfig:
        if self.adapter is not None and self.recipe in ("frozen", "fewshot"):
            raise ValueError(
                f"adapter (LoRA) fine-tunes the body, which recipe {self.recipe} does not: set "
                "recipe=finetune (or auto) with an adapter, or drop the adapter"
            )
        return self

    text: TextConfig = TextConfig()
    alerts: AlertsConfig = AlertsConfig()
    trainer: FinanceTrainerConfig = FinanceTrainerConfig()
