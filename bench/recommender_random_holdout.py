"""MovieTweetings 100K, 5-core, random 75/25 holdout per user: the default recommender vs baselines.

The protocol of the Microsoft Recommenders tables: for every user, a seeded random 25% of the
items is test; of the rest, the same share is validation (the ranker, and the ALS/BPR grids, are
chosen there); ranking is over all items, training items excluded. Ours is the default
`verticals train recommender split=random_holdout` (its step budget included); MostPopular,
ItemKNN and `implicit`'s ALS and BPR (tuned on validation, refitted on training + validation)
run on the same split objects in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.recommender_random_holdout
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.recommender_random_holdout --max-steps 10
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import torch

from bench.common import DATA, bench_parser, write_result
from bench.recommender_movietweetings import read_movietweetings
from recommender.data import load_dataset
from recommender.implicit_mf import split_baselines
from recommender.metrics import COLD_MAX_TRAIN_USERS
from recommender.schemas import RecommenderConfig
from recommender.training import train_model

KEYS = ("precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10", "mrr", "coverage")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--data", type=Path, default=DATA / "recommender" / "movietweetings_100k")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-steps", type=int, default=None, help="unset: the step budget")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    started = time.perf_counter()
    items, events = read_movietweetings(args.data)
    cfg = RecommenderConfig(model=args.model, split="random_holdout", split_seed=args.seed)
    cfg.trainer.max_steps, cfg.trainer.seed = args.max_steps, args.seed
    with tempfile.TemporaryDirectory() as tmp:
        items.to_csv(Path(tmp) / "items.csv", index=False)
        events.to_csv(Path(tmp) / "interactions.csv", index=False)
        ds = load_dataset(Path(tmp), cfg.event_weights)
        trained = train_model(cfg, ds, Path(tmp) / "run")
    trained_at = time.perf_counter()
    baselines, tuned = split_baselines(trained.split, trained.row_of, len(ds.items), seed=args.seed)
    m = trained.metrics
    metrics = {k: m[f"ranked_{k}"] for k in KEYS} | {
        f"retrieval_{k}": m[f"retrieval_{k}"] for k in KEYS
    }
    metrics |= {
        k: v
        for k, v in m.items()
        if k.startswith("cold_") and k.endswith(("ndcg_at_10", "recall_at_10", "users", "items"))
    }
    metrics |= {"test_users": m["test_users"], "test_items_held_out": m["test_items_held_out"]}
    metrics["steps"] = trained.result.steps if trained.result else 0
    write_result(
        "recommender_random_holdout",
        dataset="MovieTweetings 100K snapshot (5-core)",
        protocol=(
            f"{m['split']}; full ranking over all items, training items excluded; "
            f"towers from {args.model}, {metrics['steps']} steps (default budget unless "
            f"--max-steps); cold = held-out item with <= {COLD_MAX_TRAIN_USERS} training users"
        ),
        metrics=metrics,
        baselines={
            name: {k: v for k, v in figures.items() if k in KEYS or k.startswith("cold_")}
            | ({"chosen": tuned[name].params} if name in tuned else {})
            for name, figures in baselines.items()
        },
        anchors={
            "movielens_100k_bpr_msr_readme (other dataset, random 75/25 split)": {
                "ndcg_at_10": 0.442,
                "recall_at_10": 0.213,
            }
        },
        seconds=time.perf_counter() - started,
        seed=args.seed,
        notes=(
            f"train + ranker + our evaluation {trained_at - started:.0f} s, baselines "
            f"{time.perf_counter() - trained_at:.0f} s; one torch thread on a shared 2-core CPU"
        ),
    )


if __name__ == "__main__":
    main()
