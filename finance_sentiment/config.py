"""The training and monitoring configuration of the finance_sentiment vertical."""

from __future__ import annotations

from pydantic import Field

from shared.config import StrictModel, TrainerConfig

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
    sentence is not diluted by neutral boilerplate. Score = P(positive) - P(negative).
    """

    max_length: int = 64
    long_text_chars: int = 280
    max_sentences: int = 64


class MonitorConfig(StrictModel):
    """Windows and alert rules of the stream monitor.

    Rolling baseline: the previous `baseline_windows` windows of the same topic or entity (at
    least `min_baseline_windows` of history). Two rules, each a z-score against that baseline:

    - `negative_share`: binomial z of the window's negative count against the baseline's pooled
      negative share p0, `(k - n p0) / sqrt(n p0 (1 - p0))`, and a share of at least
      `min_negative_share`;
    - `volume`: `(n - mean) / max(std, sqrt(mean), min_std_volume)` over baseline volumes, with
      its own `volume_z_threshold` and `min_volume_spike` (counts are small and Poisson-noisy).

    A window alerts when z >= `z_threshold`, it holds at least `min_volume` items, and the same
    rule did not fire for the same key within the previous `cooldown_windows` windows. The alert
    time is the first item of the window at which the rule held (what a live stream sees).
    """

    window: str = "6h"
    baseline_windows: int = 28
    min_baseline_windows: int = 4
    z_threshold: float = 3.0
    min_volume: int = 5
    volume_z_threshold: float = 4.5
    min_volume_spike: int = 10
    min_negative_share: float = 0.4
    min_std_volume: float = 1.0
    volume_alerts: bool = True
    cooldown_windows: int = 4
    webhook_url: str | None = None
    webhook_timeout_s: float = 2.0


class FinanceConfig(StrictModel):
    """Training config: the model, texts, topics and monitor rules (saved in the artifact).

    `trainer.lr` is the heads' learning rate, `trainer.backbone_lr` the transformer body's.
    `topics` maps a topic name to a description: used for zero-shot topic assignment (embedding
    similarity) when the training data has no `topic` column.
    """

    model: str = "minilm"
    labels: list[str] = Field(default_factory=lambda: ["negative", "neutral", "positive"])
    topic_loss_weight: float = 0.5
    topics: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TOPICS))
    text: TextConfig = TextConfig()
    monitor: MonitorConfig = MonitorConfig()
    trainer: TrainerConfig = TrainerConfig(
        epochs=3,
        batch_size=16,
        lr=1e-3,
        backbone_lr=5e-5,
        warmup_ratio=0.1,
        monitor="macro_f1",
        monitor_mode="max",
    )
