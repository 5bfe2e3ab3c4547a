"""`verticals evaluate recommender`: leave-last-out metrics of a served artifact on a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from shared.errors import DataError

from .data import collapse, load_dataset
from .pipeline import eval_set, evaluate_model, user_vectors
from .ranker import ItemStats
from .split import leave_last_out


def evaluate_runtime(runtime: Any, data_path: Path) -> dict[str, float]:
    """Holds out each user's last item of `data_path` and ranks all indexed items for it.

    Items of the dataset must be in the runtime's index (add them first with POST /items).
    """
    cfg = runtime.cfg
    ds = load_dataset(Path(data_path), cfg.event_weights, cfg.on_unknown_items)
    row_of = runtime.index.row_of
    missing = sorted(set(ds.items["item_id"]) - set(row_of))
    if missing:
        raise DataError(
            f"{data_path}: {len(missing)} item(s) are not in the artifact's index, e.g. {missing[:5]}"
        )
    split = leave_last_out(collapse(ds.interactions))
    history = pd.concat([split.train, split.val], ignore_index=True)
    es = eval_set(history, split.test, row_of, cfg.max_history)
    if not len(es.targets):
        raise DataError(f"{data_path}: no user has two or more interactions to hold one out")
    emb = runtime.index.emb
    records = runtime.catalogue.records
    stats = ItemStats.compute(
        [r["item_id"] for r in records],
        [r.get("category") or "" for r in records],
        pd.Series([r.get("created_at") for r in records]),
        history,
        history["ts"].max(),
        cfg.trending_days,
    )
    metrics = evaluate_model(
        user_vectors(runtime.tower, emb, es, cfg.max_history),
        emb,
        es,
        runtime.ranker,
        stats,
        cfg.candidates,
        extra=cfg.extra_candidates,
    )
    return {"users": float(len(es.targets)), **metrics}
