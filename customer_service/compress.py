"""The `verticals compress customer_service` hook: the sentence encoder in int8, or an adapter
merged.

`int8` rewrites the artifact's `encoder/` as an int8 encoder (`shared.encoder_int8`) and
re-embeds the knowledge base with it, as a new KB version: queries and answers are then
embedded by the same network, and nothing else changes (intent head, dialogue acts, handoff
calibration). The bot loads an int8 encoder on the CPU. The validation split is the
artifact's own (the pairs split as `train` split them), scored as `evaluate` scores an answer:
the right intent (or answer id) and no handoff.

`lora-merge` rewrites an adapter artifact (trained with `adapter.method=lora`) as a plain one:
the adapter folded into its base, saved as `encoder/`; the KB is kept, since the merged encoder
embeds as the adapter on its base does (the check says how closely). `int8` of an adapter
artifact merges it first.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.artifacts import read_manifest
from shared.compression import MANIFEST_UPDATE, CompressJob, Validation
from shared.data_report import DataReport
from shared.encoder_int8 import embedding_agreement, load_encoder, quantize_encoder_folder
from shared.errors import ArtifactError, DataError
from shared.models import embed_texts

from .adapter import ENCODER_DIR, is_adapter_artifact, merge_into_folder
from .adapter import MANIFEST_KEY as ADAPTER_KEY
from .adapter import load_encoder as load_adapter_encoder
from .config import CustomerServiceConfig


def apply(job: CompressJob) -> dict[str, Any]:
    """`Compressor.apply`: the encoder of `job.out` in int8 and the KB re-embedded by it, or
    (`lora-merge`) the adapter of an adapter artifact folded into its base."""
    from .kb_store import load_current, save_version

    # `int8` and `lora-merge` are the methods the hook declares; `check_request` refused others
    manifest = read_manifest(job.source, vertical="customer_service")
    kb = load_current(job.out)
    update: dict[str, Any] = {}
    if is_adapter_artifact(manifest):
        adapted = load_adapter_encoder(job.source, manifest, merge=False)
        original = merge_into_folder(job.out, manifest)
        update = {
            MANIFEST_UPDATE: {ADAPTER_KEY: None, "formats": None},
            "merge_check": embedding_agreement(
                embed_texts(adapted, kb.entry_texts), embed_texts(original, kb.entry_texts)
            ),
        }
    elif job.method == "lora-merge":
        raise ArtifactError(
            f"{job.source} is a full model, not an adapter artifact: lora-merge folds the "
            "adapter of a bot trained with adapter.method=lora into its base"
        )
    else:
        original = load_encoder(job.out / ENCODER_DIR)
    if job.method == "lora-merge":
        return {"layers": "the adapter folded into the encoder (W + alpha/r B A)", **update}
    quantized = quantize_encoder_folder(job.out / ENCODER_DIR)
    before = embed_texts(original, kb.entry_texts)
    vectors = embed_texts(quantized, kb.entry_texts)
    saved = save_version(job.out, replace(kb, vectors=vectors))
    return {
        "layers": "every Linear layer of the encoder (dynamic int8, per output channel)",
        "kb_version": saved.version,
        "kb_embedding_agreement": embedding_agreement(before, vectors),
        **update,
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
