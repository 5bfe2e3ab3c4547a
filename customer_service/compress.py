"""The `verticals compress customer_service` hook: the sentence encoder in int8.

`int8` rewrites the artifact's `encoder/` as an int8 encoder (`shared.encoder_int8`) and
re-embeds the knowledge base with it, as a new KB version: queries and answers are then
embedded by the same network, and nothing else changes (intent head, dialogue acts, handoff
calibration). The bot loads an int8 encoder on the CPU. The validation split is the
artifact's own (the pairs split as `train` split them), scored as `evaluate` scores an answer:
the right intent (or answer id) and no handoff.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.artifacts import read_manifest
from shared.compression import CompressJob, Validation
from shared.data_report import DataReport
from shared.encoder_int8 import embedding_agreement, load_encoder, quantize_encoder_folder
from shared.errors import DataError
from shared.models import embed_texts

from .config import CustomerServiceConfig


def apply(job: CompressJob) -> dict[str, Any]:
    """`Compressor.apply`: the encoder of `job.out` in int8 and the KB re-embedded by it."""
    from .kb_store import load_current, save_version

    # `int8` is the only method the hook declares; `check_request` refused any other
    encoder_dir = job.out / "encoder"
    original = load_encoder(encoder_dir)
    quantized = quantize_encoder_folder(encoder_dir)
    kb = load_current(job.out)
    before = embed_texts(original, kb.entry_texts)
    vectors = embed_texts(quantized, kb.entry_texts)
    saved = save_version(job.out, replace(kb, vectors=vectors))
    return {
        "layers": "every Linear layer of the encoder (dynamic int8, per output channel)",
        "kb_version": saved.version,
        "kb_embedding_agreement": embedding_agreement(before, vectors),
    }


def validation(artifact: Path, data: Path) -> Validation:
    """`Compressor.validation`: the validation questions of `data` under the artifact's split,
    and the share answered rightly without a handoff (`evaluate`'s `accuracy`)."""
    from .cleaning import clean_pairs
    from .faq_eval import _right
    from .pair_splits import split_pairs
    from .schemas import load_dataset

    manifest = read_manifest(artifact, vertical="customer_service")
    cfg = CustomerServiceConfig.model_validate(manifest["config"])
    read = load_dataset(data, cfg.columns, cfg.label_map).pairs
    pairs = clean_pairs(read, DataReport(str(data), len(read)))  # as `train` cleans them
    val = split_pairs(pairs, cfg)["val"]
    if val.empty:
        raise DataError(
            f"{data} has no validation questions under this artifact's split (val_fraction "
            f"{cfg.val_fraction}, seed {cfg.trainer.seed}); give pairs with split=val"
        )
    truth = [
        (str(a or ""), str(i or "")) for a, i in zip(val["answer_id"], val["intent"], strict=True)
    ]
    inputs = [{"session_id": f"val-{i}", "message": str(q)} for i, q in enumerate(val["question"])]

    def score(outputs: list[dict[str, Any]]) -> float:
        right = [
            not out["handoff"] and _right(out, answer_id, intent)
            for out, (answer_id, intent) in zip(outputs, truth, strict=True)
        ]
        return sum(right) / len(right)

    return Validation(
        inputs=inputs,
        score=score,
        metric="val_accuracy",
        description=f"the val split of {data} ({len(inputs)} questions, seed {cfg.trainer.seed})",
    )
