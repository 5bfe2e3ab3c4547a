"""`verticals demo recommender`: generated shop -> train -> metrics vs baselines -> reasons -> new item."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.registry import build_settings, load_runtime

from .baselines import run_baselines
from .data import load_dataset
from .generate import TOPICS, make_item, write_dataset
from .schemas import RecommenderConfig, RecTrainerConfig
from .training import train_model, write_model

log = logging.getLogger(__name__)
KEYS = ("recall_at_10", "ndcg_at_10", "mrr", "coverage")


def demo_config() -> RecommenderConfig:
    """A CPU-sized run: one short epoch over a 270-item catalogue."""
    return RecommenderConfig(
        max_seq_length=32,
        max_history=10,
        trainer=RecTrainerConfig(epochs=1, max_steps=16, batch_size=32, lr=5e-5, progress=False),
    )


def run_demo(
    workdir: Path, n_users: int = 240, cfg: RecommenderConfig | None = None
) -> dict[str, Any]:
    """Runs the whole story and returns a summary with held-out test metrics."""
    started = time.perf_counter()
    workdir = Path(workdir)
    cfg = cfg or demo_config()
    data = write_dataset(workdir / "data", n_users=n_users, per_subtopic=15, seed=0)
    ds = load_dataset(data, cfg.event_weights)
    trained = train_model(cfg, ds, workdir / "run")
    history = pd.concat([trained.split.train, trained.split.val], ignore_index=True)
    baselines = run_baselines(history, trained.test_set, trained.row_of, len(ds.items), seed=0)
    m = trained.metrics
    table = {"two_tower": {k: round(m[f"retrieval_{k}"], 4) for k in KEYS}}
    if "ranked_recall_at_10" in m:
        table["two_tower+ranker"] = {k: round(m[f"ranked_{k}"], 4) for k in KEYS}
    table |= {name: {k: round(v[k], 4) for k in KEYS} for name, v in baselines.items()}
    artifact = write_model(cfg, ds, trained, workdir / "artifact")
    showcase = _showcase(artifact, ds.items)
    return {
        "test_users": m["test_users"],
        "split": "leave-last-out test (each user's last item), full ranking",
        "metrics": table,
        **showcase,
        "artifact": str(artifact),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _showcase(artifact: Path, items: pd.DataFrame) -> dict[str, Any]:
    """A user's recommendations with reasons; then a new item, recommended without retraining."""
    from recommender import VERTICAL

    # the live state stays beside the demo's artifact, whatever VERTICALS_DATA_DIR says
    runtime = load_runtime(
        VERTICAL, artifact, build_settings(VERTICAL, device="cpu", data_dir=None)
    )
    user = "u0007"
    recent = runtime.history.recent(user, 5)
    rows = [runtime.catalogue.records[e.row] for e in recent]
    before = runtime.predict([{"user_id": user, "k": 5}])[0]["items"]
    # The new item belongs to the sub-topic of the user's latest item, written fresh.
    latest = items.set_index("item_id").loc[rows[0]["item_id"]]
    sub = next(
        s
        for s, (_, phrases, _) in TOPICS[latest["category"]].items()
        if any(p in latest["description"] for p in phrases)
    )
    new = make_item(latest["category"], sub, np.random.default_rng(7), "new-0001")
    new.pop("subtopic")
    new["title"] = "Brand-New " + new["title"]
    runtime.add_items([new])
    after = runtime.predict([{"user_id": user, "k": 5}])[0]["items"]
    similar = runtime.similar("new-0001", 3)
    cold = runtime.predict([{"user_id": "a-new-visitor", "k": 3}])[0]["items"]
    fmt = lambda recs: [f"{r['title']} ({r['category']}): {r['reason']}" for r in recs]  # noqa: E731
    return {
        "user": user,
        "user_recent_items": [f"{r['title']} ({r['category']})" for r in rows],
        "recommendations": fmt(before),
        "new_item": f"{new['title']}: {new['description']}",
        "new_item_recommended_at_once": any(r["item_id"] == "new-0001" for r in after),
        "recommendations_after_adding": fmt(after),
        "new_item_similar_to": [r["title"] for r in similar],
        "new_visitor_cold_start": fmt(cold),
    }
