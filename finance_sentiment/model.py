"""The sentiment model (transformer body + mean pooling + linear heads) and the scorer.

The artifact saves body and heads as one transformers folder (`shared.hf_modeling`), which
`AutoModelForSequenceClassification` opens. When the training data has topics, a topic head on
the same pooled vector is trained jointly with sentiment.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9$@])")
IGNORE = -100


class SentimentTask(nn.Module):
    """Mean-pooled transformer body, a sentiment head and an optional topic head.

    Mean pooling matches how MiniLM was trained as a sentence encoder (its CLS pooler was not),
    so the head starts from good sentence vectors. Batch keys: `input_ids`, `attention_mask`
    (B, T); optional `labels` (B,) and `topics` (B,) with -100 where a row has no topic.
    """

    def __init__(
        self,
        backbone: nn.Module,
        n_labels: int,
        n_topics: int = 0,
        topic_loss_weight: float = 0.5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_labels)
        self.topic_head = nn.Linear(hidden, n_topics) if n_topics else None
        self.topic_loss_weight = topic_loss_weight

    def pool(self, batch: dict[str, torch.Tensor], **body_kwargs: Any) -> torch.Tensor:
        """(B, H) mean-pooled body states, after dropout; `body_kwargs` go to the body (a peft
        body takes `adapter_names`, one per row, to run several adapters in one batch)."""
        hidden = self.backbone(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **body_kwargs
        ).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return self.dropout((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    def heads(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        """`logits` (B, C) and, with a topic head, `topic_logits` (B, K) of pooled vectors."""
        result = {"logits": self.head(pooled)}
        if self.topic_head is not None:
            result["topic_logits"] = self.topic_head(pooled)
        return result

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        result = self.heads(self.pool(batch))
        if "labels" in batch:
            loss = nn.functional.cross_entropy(result["logits"].float(), batch["labels"])
            topics = batch.get("topics")
            if (
                self.topic_head is not None
                and topics is not None
                and bool((topics != IGNORE).any())
            ):
                topic_loss = nn.functional.cross_entropy(
                    result["topic_logits"].float(), topics, ignore_index=IGNORE
                )
                loss = loss + self.topic_loss_weight * topic_loss
            result["loss"] = loss
        return result


def make_collate(tokenizer, max_length: int):
    """Collate for `(text, label_id, topic_id)` tuples into a tokenised batch."""

    def collate(rows: list[tuple[str, int, int]]) -> dict[str, torch.Tensor]:
        enc = tokenizer(
            [r[0] for r in rows],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": torch.tensor([r[1] for r in rows]),
            "topics": torch.tensor([r[2] for r in rows]),
        }

    return collate


def split_sentences(text: str, max_sentences: int = 64) -> list[str]:
    """Splits on sentence-ending punctuation followed by a capital, digit, `$` or `@`."""
    parts = [p.strip() for p in SENTENCE_END.split(text.strip()) if p.strip()]
    return parts[:max_sentences] or [text]


def aggregate(probs: np.ndarray) -> np.ndarray:
    """The long-text rule: sentence probabilities averaged with weights `1 - P(neutral) + 0.05`.

    Args:
        probs: (S, 3) sentence probabilities in the order negative, neutral, positive.
    """
    weights = 1.0 - probs[:, 1] + 0.05
    return (probs * weights[:, None]).sum(0) / weights.sum()


class Scorer:
    """Scores texts: class probabilities, a score and a topic.

    The score is P(positive) - P(negative), or the artifact's score head (`score_head`, fitted
    on gold scores when the training table had them) applied to the same probabilities.
    """

    def __init__(
        self,
        tokenizer,
        task: SentimentTask,
        labels: list[str],
        topics: list[str],
        text_cfg,
        device: torch.device,
        zero_shot=None,
        score_head=None,
    ) -> None:
        self.tokenizer, self.task, self.labels, self.topics = tokenizer, task.eval(), labels, topics
        self.text_cfg, self.device, self.zero_shot = text_cfg, device, zero_shot
        self.score_head = score_head
        self._order = [labels.index(name) for name in ("negative", "neutral", "positive")]

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """The tokenised batch of `texts` on the scorer's device, as the task reads it."""
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.text_cfg.max_length,
            return_tensors="pt",
        ).to(self.device)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def probabilities(self, out: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray | None]:
        """The task's outputs as (N, 3) negative/neutral/positive and (N, K) topic probabilities."""
        probs = out["logits"].float().softmax(-1)[:, self._order].cpu().numpy()
        topics = out.get("topic_logits")
        return probs, None if topics is None else topics.float().softmax(-1).cpu().numpy()

    @torch.inference_mode()
    def forward(
        self, texts: list[str], batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 3) probabilities in negative/neutral/positive order and (N, K) topic probabilities."""
        probs, topic_probs = [], []
        for start in range(0, len(texts), batch_size):
            p, t = self.probabilities(self.task(self.encode(texts[start : start + batch_size])))
            probs.append(p)
            if t is not None:
                topic_probs.append(t)
        return np.concatenate(probs), (np.concatenate(topic_probs) if topic_probs else None)

    def pieces(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """The pieces scored for `texts` (a long text's sentences, else the text) and, per
        piece, the index of its text."""
        pieces, owner = [], []
        for i, text in enumerate(texts):
            sentences = [text]
            if len(text) > self.text_cfg.long_text_chars:
                sentences = split_sentences(text, self.text_cfg.max_sentences)
            pieces.extend(sentences)
            owner.extend([i] * len(sentences))
        return pieces, np.asarray(owner)

    def score_of(self, p: np.ndarray) -> float:
        """The score of one text's negative/neutral/positive probabilities."""
        if self.score_head is None:
            return float(p[2] - p[0])
        return float(self.score_head.predict(p[None])[0])

    def score(self, texts: list[str]) -> list[dict[str, Any]]:
        """One result per text; long texts are split into sentences and aggregated (see `aggregate`)."""
        pieces, owner = self.pieces(texts)
        return self.results(pieces, owner, *self.forward(pieces))

    def results(
        self,
        pieces: list[str],
        owner: np.ndarray,
        probs: np.ndarray,
        topic_probs: np.ndarray | None,
    ) -> list[dict[str, Any]]:
        """One result per text from its pieces' probabilities (see `pieces`)."""
        if topic_probs is None and self.zero_shot is not None:
            topic_probs = self.zero_shot.probabilities(pieces)
        results = []
        for i in range(int(owner.max()) + 1 if len(owner) else 0):
            rows = np.flatnonzero(owner == i)
            p = aggregate(probs[rows]) if len(rows) > 1 else probs[rows[0]]
            item = {
                "label": ("negative", "neutral", "positive")[int(p.argmax())],
                "score": self.score_of(p),
                "probs": {"negative": float(p[0]), "neutral": float(p[1]), "positive": float(p[2])},
                "topic": None,
                "sentences": int(len(rows)),
            }
            if topic_probs is not None:
                item["topic"] = self.topics[int(topic_probs[rows].mean(0).argmax())]
            results.append(item)
        return results


INT8_WEIGHTS = "model/int8.safetensors"
"""The int8 task (`shared.compression.int8_state_dict`) of an artifact compressed by `int8`."""
ONNX_METHODS = ("onnx", "onnx-int8")


def load_scorer(
    artifact: Path,
    device: torch.device,
    text_cfg,
    base_model: str,
    method: str | None = None,
    adapter: dict[str, Any] | None = None,
) -> Scorer:
    """Loads the scorer from an artifact's `model/` folder (or `adapter/`) and `finance.json`.

    `method` is the manifest's `compression.method` (None for a trained artifact): `int8` and
    `onnx`/`onnx-int8` artifacts hold their task in `model/int8.safetensors` or `model.onnx`
    beside `model/`'s config and tokenizer; the others hold it in `model/` (see `load_task`).
    An int8 task runs on the CPU whatever `device` says. `adapter` is the manifest's `adapter`
    section of an adapter artifact: LoRA and heads on the base model named there, whose weights
    hash is checked (`lora.load_adapter_task`).
    """
    from transformers import AutoTokenizer

    from shared.artifacts import load_json

    meta = load_json(artifact / "finance.json")
    if adapter is not None:
        from .lora import load_adapter_task

        tokenizer, task = load_adapter_task(artifact, meta, adapter)
        task = task.to(device).eval()
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(artifact / "model"))
        if method == "int8" and device.type != "cpu":
            log.info("int8 artifacts run on the CPU, not %s", device)
            device = torch.device("cpu")
        task = load_task(artifact, meta, method, device)
    return build_scorer(tokenizer, task, meta, text_cfg, device, base_model)


def build_scorer(
    tokenizer, task: nn.Module, meta: dict[str, Any], text_cfg, device, base_model, encoder=None
) -> Scorer:
    """The scorer of a loaded task and its `finance.json`; zero-shot topics embed with the
    sentence encoder `base_model`, or with `encoder` when one is already loaded."""
    zero_shot = None
    if meta["topic_mode"] == "zero-shot":
        from .topics import ZeroShotTopics

        zero_shot = ZeroShotTopics(
            base_model, meta["topic_descriptions"], device=str(device), encoder=encoder
        )
    head = None
    if meta.get("score_head"):
        from .score_head import ScoreHead

        head = ScoreHead.from_dict(meta["score_head"])
    return Scorer(
        tokenizer, task, meta["labels"], meta["topics"], text_cfg, device, zero_shot, head
    )


def load_task(
    artifact: Path, meta: dict[str, Any], method: str | None, device: torch.device
) -> nn.Module:
    """The artifact's task on `device`: a `SentimentTask` (fp32, interpolated or half), its
    int8 version, or an ONNX Runtime session that takes and returns the same dicts."""
    from shared.artifacts import load_weights
    from shared.compression import ONNX_FILE, OnnxModule, cast_for_device, load_int8_state_dict

    if method in ONNX_METHODS:
        return OnnxModule(artifact / ONNX_FILE, device)
    if method == "int8":
        tensors = load_weights(artifact / INT8_WEIGHTS)
        return load_int8_state_dict(task_skeleton(artifact, meta), tensors).eval()
    return cast_for_device(float_task(artifact, meta), method, device).eval()


def n_topics(meta: dict[str, Any]) -> int:
    """Rows of the topic head of an artifact with this `finance.json` (0: no topic head)."""
    return len(meta["topics"]) if meta["topic_mode"] == "classifier" else 0


def task_skeleton(artifact: Path, meta: dict[str, Any]) -> SentimentTask:
    """The artifact's task architecture (from `model/config.json`) with fresh weights."""
    from transformers import AutoConfig, AutoModel

    body = AutoModel.from_config(AutoConfig.from_pretrained(str(artifact / "model")))
    return SentimentTask(body, len(meta["labels"]), n_topics(meta))


def float_task(artifact: Path, meta: dict[str, Any]) -> SentimentTask:
    """The task saved in `model/`: a `shared.hf_modeling` classifier (body and heads in one
    folder); artifacts of earlier versions kept the heads apart in `heads.safetensors`, and
    still load."""
    from transformers import AutoModel

    from shared.artifacts import load_weights
    from shared.hf_modeling import MeanPooledForSequenceClassification

    topics = n_topics(meta)
    legacy = artifact / "heads.safetensors"
    if legacy.exists():
        task = SentimentTask(
            AutoModel.from_pretrained(str(artifact / "model")), len(meta["labels"]), topics
        )
        task.load_state_dict(load_weights(legacy), strict=False)
        return task
    exported = MeanPooledForSequenceClassification.from_config_path(str(artifact / "model"))
    task = SentimentTask(exported.backbone, len(meta["labels"]), topics)
    task.head.load_state_dict(exported.classifier.state_dict())
    if topics:
        task.topic_head.load_state_dict(exported.topic_classifier.state_dict())
    return task
