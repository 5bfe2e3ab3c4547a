"""The `verticals compress recommender` hook: the item tower (a sentence encoder) in int8.

`int8` rewrites the artifact's `encoder/` as an int8 encoder (`shared.encoder_int8`) and
re-embeds the catalogue with it, so that the items indexed at training and the items added
later (`POST /items`, embedded by the served encoder) lie in one embedding space. The items'
texts come from `--data`, the folder the artifact was trained on (the artifact keeps no item
text); an indexed item missing there is an error naming it. The user tower, ranker and rules
stay as trained.

A recommendation never runs the encoder (a user vector pools the indexed embeddings), so int8
shrinks the artifact and speeds up embedding new items, and the measured p50 of a
recommendation stays where it was; the params record both the catalogue's embedding agreement
and the items embedded per second by each encoder.

Validation: the artifact's own split of `--data` (`split` of its config); each validation user
is sent as an ad-hoc `history` (their training interactions, oldest first) and scored by
Recall@10 of their validation items, the figure training reports as `val_recall_at_10`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shared.artifacts import read_manifest
from shared.compression import CompressJob, Validation
from shared.encoder_int8 import embedding_agreement, load_encoder, quantize_encoder_folder
from shared.errors import DataError
from shared.models import embed_texts

ENCODER_DIR = "encoder"
VAL_K = 10


def _config(artifact: Path):
    from .schemas import RecommenderConfig

    manifest = read_manifest(artifact, vertical="recommender")
    return RecommenderConfig.model_validate(manifest["config"])


def _dataset(artifact: Path, data: Path):
    from .data import load_dataset

    cfg = _config(artifact)
    return cfg, load_dataset(Path(data), cfg.event_weights, cfg.on_unknown_items, cfg.columns)


def apply(job: CompressJob) -> dict[str, Any]:
    """`Compressor.apply`: the encoder of `job.out` in int8 and the catalogue re-embedded."""
    from .index import ItemIndex

    # `int8` is the only method the hook declares; `check_request` refused any other
    cfg, ds = _dataset(job.source, job.data)
    index = ItemIndex.load(job.out / "index")
    texts_of = dict(zip(ds.items["item_id"].astype(str), ds.items["text"], strict=True))
    missing = [i for i in index.ids if i not in texts_of]
    if missing:
        raise DataError(
            f"{job.data}: {len(missing)} indexed item(s) have no text there, e.g. {missing[:5]}; "
            "give the data folder the artifact was trained on"
        )
    texts = [texts_of[i] for i in index.ids]
    original = load_encoder(job.out / ENCODER_DIR)
    original.max_seq_length = cfg.max_seq_length
    before, fp32_rate = _embed_timed(original, texts)
    quantized = quantize_encoder_folder(job.out / ENCODER_DIR)
    quantized.max_seq_length = cfg.max_seq_length
    vectors, int8_rate = _embed_timed(quantized, texts)
    ItemIndex(index.dim, index.cfg, index.requested).build(index.ids, vectors).save(
        job.out / "index"
    )
    return {
        "layers": "every Linear layer of the item tower (dynamic int8, per output channel)",
        "catalogue_items": len(texts),
        "catalogue_embedding_agreement": embedding_agreement(before, vectors),
        "items_embedded_per_s": {"fp32": fp32_rate, "int8": int8_rate},
    }


def _embed_timed(encoder: Any, texts: list[str]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    vectors = embed_texts(encoder, texts)
    return vectors, len(texts) / max(time.perf_counter() - started, 1e-9)


def validation(artifact: Path, data: Path) -> Validation:
    """`Compressor.validation`: each validation user's training history as an ad-hoc request,
    scored by Recall@10 of their validation items."""
    from .data import collapse
    from .split import make_split

    cfg, ds = _dataset(artifact, data)
    split = make_split(cfg, collapse(ds.interactions))
    targets = split.val.groupby("user_id")["item_id"].agg(lambda s: set(map(str, s)))
    train = split.train.sort_values("ts", kind="stable")
    inputs, truth = [], []
    for user, rows in train.groupby("user_id", sort=True):
        if user not in targets.index:
            continue
        history = [
            {"item_id": str(i), "event": str(e)}
            for i, e in zip(rows["item_id"], rows["event"], strict=True)
        ]
        inputs.append({"history": history[-cfg.max_history :], "k": VAL_K})
        truth.append(targets[user])
    if not inputs:
        raise DataError(
            f"{data} has no validation user with training history under this artifact's split "
            f"({split.protocol})"
        )

    def score(outputs: list[dict[str, Any]]) -> float:
        recalls = [
            len({item["item_id"] for item in out["items"]} & held) / min(len(held), VAL_K)
            for out, held in zip(outputs, truth, strict=True)
        ]
        return float(np.mean(recalls))

    return Validation(
        inputs=inputs,
        score=score,
        metric=f"val_recall_at_{VAL_K}",
        description=f"the val split of {data} ({len(inputs)} users, {split.protocol})",
    )
