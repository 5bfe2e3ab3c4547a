"""A sequence classifier over a mean-pooled transformer, in the Hugging Face model format.

The verticals' text classifiers pool the body's token states by their mean (how sentence
encoders such as MiniLM were trained; their CLS pooler was not), which no built-in
`*ForSequenceClassification` does. This file is copied beside the weights of every exported
classifier and named in its `config.json` `auto_map`, so that

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

loads the same model, with `id2label`, and returns the same logits. It imports nothing but torch
and transformers, because it runs from the exported folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.models.auto.modeling_auto import MODEL_MAPPING


def _body(config: PretrainedConfig) -> PreTrainedModel:
    """The `AutoModel` body of `config`; in eager attention where its architecture has no SDPA
    (MPNet), which the wrapper's flags would otherwise ask of it."""
    body_class = MODEL_MAPPING[type(config)] if type(config) in MODEL_MAPPING else None
    if body_class is not None and not body_class._supports_sdpa:
        return AutoModel.from_config(config, attn_implementation="eager")
    return AutoModel.from_config(config)


@dataclass
class MeanPooledClassifierOutput(ModelOutput):
    """`logits` (B, num_labels); `topic_logits` (B, K) when the model has a topic head."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    topic_logits: torch.Tensor | None = None


class MeanPooledForSequenceClassification(PreTrainedModel):
    """Any `AutoModel` body, mean pooling over the attention mask, dropout and a linear head.

    The config is the body's own (`model_type` bert, roberta, ...) plus `num_labels`/`id2label`
    and, optionally, `topic_labels` for a second linear head on the same pooled vector.
    """

    config_class = PretrainedConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _supports_sdpa = True  # attention is the body's; these flags let it keep its own choice
    _supports_flash_attn = True
    _supports_flex_attn = True

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.backbone = _body(config)
        dropout = getattr(config, "classifier_dropout", None)
        self.dropout = nn.Dropout(0.1 if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        topics = getattr(config, "topic_labels", None) or []
        self.topic_classifier = nn.Linear(config.hidden_size, len(topics)) if topics else None
        self.post_init()

    @classmethod
    def from_config_path(cls, folder: str) -> MeanPooledForSequenceClassification:
        """Loads a folder with the body's `AutoConfig` (what `from_pretrained` needs here)."""
        return cls.from_pretrained(folder, config=AutoConfig.from_pretrained(folder))

    def pool(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """(B, H) mean of the body's last hidden states over real tokens."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> MeanPooledClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pooled = self.dropout(self.pool(input_ids, attention_mask, token_type_ids))
        logits = self.classifier(pooled)
        topic_logits = self.topic_classifier(pooled) if self.topic_classifier is not None else None
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return MeanPooledClassifierOutput(loss=loss, logits=logits, topic_logits=topic_logits)


def export_classifier(
    folder: str,
    backbone: nn.Module,
    head: nn.Linear,
    labels: list[str],
    tokenizer=None,
    topic_head: nn.Linear | None = None,
    topic_labels: list[str] | None = None,
) -> MeanPooledForSequenceClassification:
    """Writes body + heads as one `save_pretrained` folder that Auto classes load (see above).

    Args:
        folder: Output folder; gets `config.json` (with `id2label` and `auto_map`),
            `model.safetensors`, the tokenizer files and `modeling_verticals.py`.
        backbone: The trained `AutoModel` body.
        head: Linear sentiment/intent head on the mean-pooled vector.
        labels: Class names in the head's output order.
    """
    import copy
    import shutil
    from pathlib import Path

    config = copy.deepcopy(backbone.config)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
    config.topic_labels = list(topic_labels or []) if topic_head is not None else []
    config.architectures = [MeanPooledForSequenceClassification.__name__]
    config.auto_map = {
        "AutoModelForSequenceClassification": f"modeling_verticals.{MeanPooledForSequenceClassification.__name__}"
    }
    model = MeanPooledForSequenceClassification(config)
    model.backbone.load_state_dict(backbone.state_dict())
    model.classifier.load_state_dict(head.state_dict())
    if topic_head is not None:
        model.topic_classifier.load_state_dict(topic_head.state_dict())
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    shutil.copyfile(__file__, Path(folder) / "modeling_verticals.py")
    return model
