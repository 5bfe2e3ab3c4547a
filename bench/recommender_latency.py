"""Recommendation latency with a 100,000-item index: exact vs HNSW vs IVF, and the ANN recall@10.

Items are synthetic (clustered unit vectors of MiniLM's 384 dimensions, generated titles and
categories, 200,000 generated events over 20,000 users); the path timed is the service's
recommendation path for a known user: history pooling (user tower), index search, the
logistic ranker over 100 candidates, rules and reasons. The encoder is the packaged MiniLM,
untouched by this path (known users need no text encoding). Ranker weights are fixed numbers
(a learned ranker costs the same). ANN recall@10 = overlap of the top-10 index results with
exact search, over the same users.

    .venv/bin/python bench/recommender_latency.py [--items 100000] [--requests 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import write_result
from recommender.index import ItemIndex
from recommender.ranker import FEATURES
from recommender.recommend import RecRequest
from recommender.schemas import IndexConfig, RecommenderConfig
from recommender.towers import UserTower
from shared.artifacts import save_json, save_weights, write_artifact
from shared.models import load_model
from shared.settings import ServeSettings


def synthetic_artifact(folder: Path, n_items: int, n_users: int, n_events: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    dim = 384
    centers = rng.normal(size=(200, dim))
    emb = centers[rng.integers(0, 200, n_items)] + 0.5 * rng.normal(size=(n_items, dim))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"s{k:06d}" for k in range(n_items)]
    cats = [f"cat{k % 20}" for k in range(n_items)]
    cfg = RecommenderConfig(index=IndexConfig(kind="exact"))
    events = pd.DataFrame(
        {
            "user_id": [f"u{k}" for k in rng.integers(0, n_users, n_events)],
            "item_id": [ids[k] for k in rng.zipf(1.3, n_events) % n_items],
            "event": "click",
            "weight": 1.0,
            "event_id": "",
            "ts": pd.Timestamp("2026-06-01", tz="UTC")
            + pd.to_timedelta(rng.uniform(0, 30 * 86400, n_events), unit="s"),
        }
    )
    with write_artifact(
        folder,
        vertical="recommender",
        model_name="minilm",
        config=cfg.model_dump(mode="json"),
        data_fingerprint="sha256:synthetic",
        extra={"dim": dim},
    ) as tmp:
        load_model("minilm", "sentence-encoder").save(str(tmp / "encoder"))
        save_weights(tmp / "user_tower.safetensors", UserTower(dim, cfg.max_history).state_dict())
        ItemIndex(dim, cfg.index).build(ids, emb).save(tmp / "index")
        pd.DataFrame(
            {
                "item_id": ids,
                "title": [f"Item {i}" for i in ids],
                "category": cats,
                "created_at": None,
            }
        ).to_json(tmp / "items.jsonl", orient="records", lines=True)
        events.assign(ts=events["ts"].map(lambda t: t.isoformat())).to_json(
            tmp / "interactions.jsonl", orient="records", lines=True
        )
        coef = [1.0, -0.1, 0.3, 0.2, -0.05, 0.5, 0.8, 0.0, 0.5, -0.2, 0.3, -0.2, 0.2, -0.1]
        coef = (coef + [0.0] * len(FEATURES))[: len(FEATURES)]
        save_json(
            tmp / "ranker.json",
            {
                "kind": "logistic",
                "params": {
                    "features": list(FEATURES),
                    "mean": [0.0] * len(FEATURES),
                    "scale": [1.0] * len(FEATURES),
                    "coef": coef,
                    "intercept": 0.0,
                },
            },
        )
    return folder


def time_requests(runtime, users: list[str], k: int = 10) -> tuple[list[float], list[list[str]]]:
    times, lists = [], []
    for user in users:
        req = runtime.validate(RecRequest(user, k=k))
        start = time.perf_counter()
        out = runtime._batch([req])[0]
        times.append((time.perf_counter() - start) * 1000)
        lists.append([i["item_id"] for i in out["items"]])
    return times, lists


def known_users(runtime, n: int) -> tuple[list[str], np.ndarray]:
    """`n` users with a history, and their user-tower vectors."""
    from recommender.towers import pool_users

    users = [u for u in list(runtime.history.users)[: n * 2] if runtime.history.users[u]][:n]
    hists = [runtime.history.recent(u, runtime.cfg.max_history) for u in users]
    vecs = pool_users(
        runtime.tower,
        runtime.index.emb,
        [(np.asarray([e.row for e in h]), np.asarray([e.weight for e in h])) for h in hists],
        runtime.cfg.max_history,
    )
    return users, vecs


def ann_metrics(runtime, exact_index: ItemIndex, kind: str, users, vecs, exact_top, lists_exact):
    """Swaps an ANN index of `kind` into the runtime and measures build time, recall, latency."""
    t0 = time.perf_counter()
    runtime.index = ItemIndex(exact_index.dim, IndexConfig(), kind=kind).build(
        exact_index.ids, exact_index.emb
    )
    build_s = time.perf_counter() - t0
    _, top = runtime.index.search(vecs, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, exact_top, strict=True)])
    time_requests(runtime, users[:20])
    t_ann, lists_ann = time_requests(runtime, users)
    overlap = np.mean(
        [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(lists_ann, lists_exact, strict=True)]
    )
    suffix = "ann" if kind == "hnsw" else kind
    return {
        f"p50_ms_{suffix}": float(np.percentile(t_ann, 50)),
        f"p95_ms_{suffix}": float(np.percentile(t_ann, 95)),
        f"{suffix}_recall_at_10": float(recall),
        f"{suffix}_final_list_overlap": float(overlap),
        f"{suffix}_build_s": build_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from recommender.recommend import RecommenderRuntime

    started = time.perf_counter()
    metrics: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        artifact = synthetic_artifact(
            Path(tmp) / "artifact", args.items, 20_000, 200_000, args.seed
        )
        settings = ServeSettings(device="cpu", data_dir=Path(tmp) / "state")
        runtime = RecommenderRuntime(artifact, settings)
        users, vecs = known_users(runtime, args.requests)
        exact_index = runtime.index
        _, exact_top = exact_index.search(vecs, 10)
        time_requests(runtime, users[:20])  # warm up
        t_exact, lists_exact = time_requests(runtime, users)
        metrics |= {
            "p50_ms_exact": float(np.percentile(t_exact, 50)),
            "p95_ms_exact": float(np.percentile(t_exact, 95)),
        }
        for kind in ("hnsw", "ivf"):
            metrics |= ann_metrics(runtime, exact_index, kind, users, vecs, exact_top, lists_exact)
    metrics["speedup_p50_ann_vs_exact"] = metrics["p50_ms_exact"] / metrics["p50_ms_ann"]
    write_result(
        "recommender_latency",
        dataset=f"synthetic: {args.items} items (384-d clustered), 20,000 users",
        protocol=(
            f"{args.requests} sequential single-user requests through the runtime's recommendation "
            "path (pooling, search, ranker over 100 candidates, rules, reasons), CPU; 'ann' = HNSW "
            "(M=32, efSearch=128); IVF nlist=4*sqrt(N), nprobe=16; recall vs exact top-10"
        ),
        metrics=metrics,
        seconds=time.perf_counter() - started,
        seed=args.seed,
        notes="exact = IndexFlatIP; timings on a CPU shared with other jobs",
    )


if __name__ == "__main__":
    main()
