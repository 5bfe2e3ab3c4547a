"""Domain self-supervised pretraining of a text encoder on unlabelled text (`verticals pretrain`).

Two objectives, both run by the shared loop:

- `simcse` (the default, for sentence encoders): unsupervised SimCSE (Gao et al. 2021). Each text
  is encoded twice with dropout on; the two views of a text are positives and the other texts
  of the batch negatives (in-batch cross-entropy over scaled cosines, as sentence-transformers'
  `MultipleNegativesRankingLoss`). It keeps the embedding space usable, so the frozen and
  retrieval recipes gain as well as fine-tuning.
- `mlm`: masked language modelling (transformers' `DataCollatorForLanguageModeling`), the
  task-adaptive pretraining of Gururangan et al. 2020. The MLM head is new when the encoder
  ships without one (sentence-transformers folders); only the body is kept.

The output folder is a sentence-transformers folder (the transformer at its root), which every
text vertical's `model:` accepts, plus `pretrain.json` (objective, data, base model, curve).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from shared.config import StrictModel, TrainerConfig
from shared.data import fingerprint
from shared.errors import DataError
from shared.fewshot import mean_pool

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".json", ".parquet")


class PretrainTrainerConfig(TrainerConfig):
    """The loop's settings for pretraining: one pass, the whole encoder at one rate."""

    epochs: int = 1
    lr: float = 3e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1


class PretrainConfig(StrictModel):
    """What `verticals pretrain` accepts.

    Attributes:
        model: The encoder to continue from (default: the vertical's own `model`).
        objective: `simcse` (contrastive, keeps sentence embeddings) or `mlm` (masked LM).
        max_length: Tokens kept per text.
        mlm_probability: Share of tokens masked by `mlm`.
        scale: Inverse temperature of `simcse`'s in-batch softmax (SimCSE's 1/0.05).
        max_texts: Cap on the texts used (a seeded sample; None: all).
        text_column: Column of the texts in a table file (`.txt` is one text per line).
    """

    model: str = "minilm"
    objective: Literal["simcse", "mlm"] = "simcse"
    max_length: int = Field(64, ge=8, le=512)
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    scale: float = Field(20.0, gt=0)
    max_texts: int | None = Field(None, ge=2)
    text_column: str = "text"
    trainer: PretrainTrainerConfig = PretrainTrainerConfig()


def read_texts(path: str | Path, column: str = "text") -> list[str]:
    """Unlabelled texts: one per line of a `.txt`, or the `column` of a table; blank and
    repeated texts dropped (first kept).

    Raises:
        DataError: naming the file when it is missing, unreadable, has no such column, or
            holds fewer than two texts.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (give a .txt with one text per line, or a table)")
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise DataError(f"{path}: unsupported file type; use one of {', '.join(TEXT_SUFFIXES)}")
    if path.suffix.lower() == ".txt":
        try:
            raw = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    else:
        from shared.data import read_table

        table = read_table(path)
        if column not in table.columns:
            raise DataError(
                f"{path}: no column {column!r} (columns: {list(table.columns)}); "
                f"set text_column=<your column>"
            )
        raw = table[column].astype("string").fillna("").tolist()
    texts = list(dict.fromkeys(t.strip() for t in raw if t and t.strip()))
    if len(texts) < 2:
        raise DataError(f"{path}: {len(texts)} non-empty text(s); pretraining needs at least 2")
    return texts


class SimCSETask(nn.Module):
    """Unsupervised SimCSE: two dropout views of each text, in-batch negatives.

    `backbone` is the transformer body (`AutoModel`); batches are tokenised texts.
    """

    def __init__(self, backbone: nn.Module, scale: float = 20.0) -> None:
        super().__init__()
        self.backbone, self.scale = backbone, scale

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]).float(), dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        a, b = self.embed(batch), self.embed(batch)  # dropout differs between the two passes
        logits = self.scale * a @ b.T
        target = torch.arange(len(a), device=a.device)
        return {"loss": nn.functional.cross_entropy(logits, target)}


class MaskedLMTask(nn.Module):
    """Masked language modelling; `backbone` is the body inside the MLM model."""

    def __init__(self, masked_lm: nn.Module) -> None:
        super().__init__()
        self.masked_lm = masked_lm
        self.backbone = masked_lm.base_model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": self.masked_lm(**batch).loss}


def _write_record(cfg, data, out_dir: Path, n_texts: int, seconds: float, result) -> None:
    """`pretrain.json`: objective, base model, data and its fingerprint, time and the curve."""
    record = {
        "objective": cfg.objective,
        "base_model": cfg.model,
        "texts": n_texts,
        "data": str(data),
        "data_fingerprint": fingerprint(Path(data)),
        "seconds": round(seconds, 1),
        "training": result.summary(),
        "config": cfg.model_dump(mode="json"),
    }
    (out_dir / "pretrain.json").write_text(json.dumps(record, indent=2), encoding="utf-8")


def pretrain(cfg: PretrainConfig, data: str | Path, out_dir: str | Path) -> Path:
    """Continues pretraining `cfg.model` on the texts of `data`; writes and returns `out_dir`.

    Raises:
        DataError: for unreadable or too little text (see `read_texts`).
        ModelUnavailableError: when the encoder cannot be loaded.
    """
    import numpy as np

    from shared.devices import seed_everything
    from shared.models import _text_source, load_model
    from shared.training import fit

    seed_everything(cfg.trainer.seed)
    texts = read_texts(data, cfg.text_column)
    if cfg.max_texts is not None and len(texts) > cfg.max_texts:
        keep = np.random.default_rng(cfg.trainer.seed).choice(len(texts), cfg.max_texts, False)
        texts = [texts[i] for i in sorted(keep)]
    out_dir = Path(out_dir)
    encoder = load_model(cfg.model, "sentence-encoder")
    body = encoder[0].auto_model
    tokenizer = encoder.tokenizer
    log.info("pretraining %s on %d texts (%s)", cfg.model, len(texts), cfg.objective)
    if cfg.objective == "simcse":
        task = SimCSETask(body, cfg.scale)

        def collate(rows: list[str]) -> dict[str, torch.Tensor]:
            enc = tokenizer(
                rows, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt"
            )
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    else:
        from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

        masked_lm = AutoModelForMaskedLM.from_pretrained(_text_source(cfg.model))
        masked_lm.base_model.load_state_dict(body.state_dict(), strict=False)
        task = MaskedLMTask(masked_lm)
        masker = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mlm_probability)

        def collate(rows: list[str]) -> dict[str, torch.Tensor]:
            enc = tokenizer(rows, truncation=True, max_length=cfg.max_length)
            return dict(masker([{"input_ids": ids} for ids in enc["input_ids"]]))

    started = time.perf_counter()
    result = fit(task, texts, collate, cfg.trainer, out_dir / "run")
    if cfg.objective == "mlm":
        body.load_state_dict(task.backbone.state_dict(), strict=False)  # the pooler stays
    encoder.save(str(out_dir))
    _write_record(cfg, data, out_dir, len(texts), time.perf_counter() - started, result)
    log.info("pretrained encoder written to %s (use it as model=%s)", out_dir, out_dir)
    return out_dir
