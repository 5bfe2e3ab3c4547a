"""Training configuration of the customer-service bot (YAML -> this model -> builders)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from customer_service.dialogue_acts import DEFAULT_ACT_EXAMPLES, DEFAULT_REPLIES
from shared.adapters import AdapterConfig, lora_recipe
from shared.config import StrictModel, TrainerConfig
from shared.data_import import ColumnMap, LabelMap, check_column_map
from shared.settings import TenantSettings


class CustomerServiceTrainerConfig(TrainerConfig):
    """The shared loop's settings with the bot's defaults.

    The head learns from scratch (`lr`); the pretrained encoder moves gently (`backbone_lr`). The
    best epoch is picked by the evaluator's primary metric: validation intent accuracy with an
    intent head, else validation retrieval accuracy (the training loss without validation).
    """

    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-3
    backbone_lr: float | None = 5e-5


class DialogueConfig(StrictModel):
    """Dialogue acts and the bot's own replies (see `customer_service.dialogue_acts`).

    Attributes:
        act_examples: Act name -> example messages the act classifier learns from. Overriding
            one act's list replaces it; an empty list drops the act. A `dialogue_acts.csv`
            (`text, act`) in the data folder adds examples. `human` always hands off.
        act_threshold: Least probability an act needs; below it the message is read as a question.
        act_regularization: Inverse L2 strength `C` of the act classifier's logistic regression.
        replies: The bot's reply per act, and `ask_slot`, the question asked when an answer
            needs a slot the conversation has not given (`{slot}` and `{options}` are filled).
    """

    act_examples: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ACT_EXAMPLES.items()}
    )
    """Act -> example messages; an override replaces that act's list, [] drops the act."""
    act_threshold: float = Field(0.5, gt=0, lt=1)
    """Least probability of an act; below it the message is read as a question."""
    act_regularization: float = Field(10.0, gt=0)
    """Inverse L2 strength C of the act classifier (a logistic regression on the embeddings)."""
    replies: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_REPLIES))
    """The reply per act, and ask_slot, the question for a missing slot ({slot}, {options})."""

    @field_validator("act_examples", "replies", mode="before")
    @classmethod
    def _over_the_defaults(cls, value: object, info) -> object:
        # An override names only the acts it changes; the others keep their defaults.
        if not isinstance(value, dict):
            return value
        base = DEFAULT_ACT_EXAMPLES if info.field_name == "act_examples" else DEFAULT_REPLIES
        return {**base, **value}

    @model_validator(mode="after")
    def _every_act_has_a_reply(self) -> DialogueConfig:
        missing = sorted(a for a, e in self.act_examples.items() if e and a not in self.replies)
        if missing:
            raise ValueError(
                f"dialogue.replies has no reply for act(s) {', '.join(missing)}; "
                f"add dialogue.replies.{missing[0]}"
            )
        if "ask_slot" not in self.replies:
            raise ValueError("dialogue.replies.ask_slot is missing (the question for a slot)")
        return self


class CustomerServiceConfig(StrictModel):
    """What `verticals train customer_service` accepts.

    Attributes:
        model: Sentence encoder to fine-tune (`minilm` offline, a folder, or a hub id).
        recipe: How the model is trained (`customer_service.recipes`): `frozen` keeps the
            encoder as loaded with a logistic-regression intent head; `finetune` tunes both;
            `auto` scores both on validation, or by `recipe_folds`-fold CV on the training pairs
            when validation is small (and training has at most 3,000 pairs), and records the
            choice and the scores in the manifest under `recipe`. `lora` is `finetune`
            through a LoRA adapter (`adapter`, default r=8).
        recipe_folds: k of `auto`'s cross-validation.
        max_seq_length: Tokens kept per text; support questions are short.
        mnrl_scale: Inverse temperature of the in-batch-negatives loss.
        intent_loss_weight: Weight of the intent cross-entropy next to the retrieval loss.
        hybrid: Fuse BM25 with dense scores: `auto` keeps it only if it helps on validation.
        hybrid_weights: BM25 weights tried on validation when `hybrid` is `auto`.
        target_oos_recall: Out-of-scope recall the handoff threshold aims for.
        oos_recall_confidence: Confidence that the threshold reaches `target_oos_recall` on new
            questions like the validation ones, not just on those (a Clopper-Pearson lower bound,
            approximate since the in-scope score is fitted on them); 0 aims for the target on
            validation exactly.
        fallback_handoff_rate: Without out-of-scope validation questions, the share of in-scope
            validation questions allowed to hand off (sets the threshold).
        val_fraction: Share of the pairs without a `split` drawn for calibration and thresholds;
            none are drawn when some pairs are fixed as `val`.
        test_fraction: Share of the pairs without a `split` drawn for the reported metrics; none
            are drawn when some pairs are fixed as `test` (a given test set is measured alone).
        session_ttl_s: Seconds a conversation is remembered after its last message.
        max_sessions: Sessions kept in memory (least recently used are dropped first).
        dialogue: Dialogue acts (greetings, thanks, a request for a person...) and replies.
        columns: Our column name -> yours, for every table of the data folder that has it
            (`columns.question=utterance`; empty: the names of the module doc of `schemas`).
        label_map: Your intent labels -> intent names, applied to the KB and the pairs
            (`label_map.0=card_lost`); labels not in it are kept.
        adapter: Fine-tune through a LoRA (or IA3) adapter on the encoder instead of the
            whole encoder (`customer_service.adapter`): the artifact then holds the adapter,
            the heads and the base model's hash, not the encoder. It is the `finetune` recipe
            through the adapter: `recipe` must be `finetune` or `auto` (which then weighs no
            recipe: an adapter is asked for its size, not its score).
    """

    model: str = "minilm"
    recipe: Literal["auto", "frozen", "finetune"] = "auto"
    recipe_folds: int = Field(5, ge=2)
    max_seq_length: int = Field(48, ge=8, le=512)
    mnrl_scale: float = 20.0
    intent_loss_weight: float = 1.0
    hybrid: Literal["auto", "on", "off"] = "auto"
    hybrid_weights: list[float] = [0.05, 0.1, 0.2, 0.3]
    target_oos_recall: float = Field(0.8, gt=0, lt=1)
    oos_recall_confidence: float = Field(0.9, ge=0, lt=1)
    fallback_handoff_rate: float = Field(0.05, ge=0, lt=1)
    val_fraction: float = Field(0.15, ge=0, lt=0.5)
    test_fraction: float = Field(0.15, ge=0, lt=0.5)
    session_ttl_s: float = 1800.0
    max_sessions: int = 10_000
    dialogue: DialogueConfig = DialogueConfig()
    """Dialogue acts (greetings, thanks, goodbyes, yes/no, a request for a person) and replies."""
    columns: ColumnMap = Field(default_factory=dict)
    """Our column -> yours, in every table of the folder: {question: utterance, intent: label}."""
    label_map: LabelMap = Field(default_factory=dict)
    """Your intent label -> the intent name, in the KB and the pairs, e.g. {"0": card_lost}."""
    trainer: CustomerServiceTrainerConfig = CustomerServiceTrainerConfig()
    adapter: AdapterConfig | None = None
    """Fine-tune through a peft adapter ({method: lora, r: 8, alpha: 16, dropout: 0.1,
    target_modules: all-linear}), or None: the whole encoder."""

    @model_validator(mode="before")
    @classmethod
    def _recipe_lora(cls, data: Any) -> Any:
        return lora_recipe(data)  # recipe=lora: finetune through a LoRA adapter

    @model_validator(mode="after")
    def _adapter_trains_by_finetune(self) -> CustomerServiceConfig:
        if self.adapter is not None and self.recipe == "frozen":
            raise ValueError(
                "adapter (LoRA) fine-tunes the encoder, which recipe frozen does not: set "
                "recipe=finetune (or auto) with an adapter, or drop the adapter"
            )
        return self

    @field_validator("columns")
    @classmethod
    def _columns_are_data_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        from customer_service.schemas import SCHEMAS  # imports pandas: only when columns are set

        return check_column_map(columns, SCHEMAS)


class CustomerServiceSettings(TenantSettings):
    """Deployment knobs of the running bot: the shared ones (`VERTICALS_*`), the tenants'
    (`tenants_dir`, `tenant_cache_size`: `customer_service.tenants`) plus its own.

    Attributes:
        customer_service_precision: Encoder weights at inference. `auto` uses bfloat16 on a CPU that computes it
            natively (AMX or AVX512-BF16): a one-message forward is bound by reading the weights,
            which bf16 halves; embeddings keep a cosine of ~0.9999 to float32. `fp32` or `bf16`
            force one. Environment variable `VERTICALS_CUSTOMER_SERVICE_PRECISION`.
    """

    customer_service_precision: Literal["auto", "fp32", "bf16"] = "auto"
