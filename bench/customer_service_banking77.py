"""BANKING77 intent accuracy through `customer_service` training (full data, or k-shot over seeds).

Protocol: official train (10,003) / test (3,080). Full data: a stratified 10% of train is held out
as validation (BANKING77 has none). k-shot: k examples per intent drawn from train per seed, no
validation. The baseline, measured in the same run on the same training rows, is logistic
regression on frozen default MiniLM embeddings (C picked on validation).

Modes: `head` (default, bounded for a shared CPU): the encoder stays frozen, each text is embedded
once, and the intent head (initialised at the class prototypes) trains through the shared loop.
`finetune`: the full bi-encoder + head fine-tune (`--epochs`), our intended setup on a GPU.

    python bench/customer_service_banking77.py                      # full data, head mode
    python bench/customer_service_banking77.py --shots 10 --seeds 0 1 2 3 4
    python bench/customer_service_banking77.py --mode finetune --epochs 2
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import DATA, bench_parser, write_result
from bench.customer_service_common import (
    add_recipe_args,
    frozen_embeddings,
    intent_config,
    keep_artifact,
    logreg_baseline,
    recipe_text,
    write_intent_folder,
)
from customer_service.recipes import _FROZEN_CACHES
from customer_service.training import train
from shared.artifacts import read_manifest

ANCHORS = {
    "bert_large_full": 0.9366,
    "use_convert_full": 0.9336,
    "use_convert_10shot": 0.8519,
    "frozen_minilm_logreg_floor_full": 0.9295,
}


def run_once(train_df, test_df, args, seed: int, val_fraction: float) -> tuple[dict, dict]:
    cfg = intent_config(args, seed)  # without validation the loop keeps the lowest training loss
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_intent_folder(Path(tmp) / "data", train_df, test_df, val_fraction, seed)
        artifact = train(cfg, folder, Path(tmp) / "run")
        keep_artifact(artifact, args.keep and args.keep / f"seed{seed}")
        manifest = read_manifest(artifact)
        m = manifest["metrics"]
        pairs = pd.read_csv(folder / "pairs.csv")
    ours = {
        "accuracy": m["test_intent_accuracy"],
        "macro_f1": m["test_intent_macro_f1"],
        # the intent head alone, and its weight against the retrieved neighbours (picked on val)
        "accuracy_head_only": m.get("test_intent_accuracy_head_only", m["test_intent_accuracy"]),
        "head_weight": manifest["calibration"]["head_weight"],
    }
    cache = _FROZEN_CACHES.get((args.model, args.max_seq_length))
    base = baseline(pairs, cache, args)
    return ours, base


def baseline(pairs: pd.DataFrame, cache, args) -> dict[str, float]:
    cache = frozen_embeddings(pairs["question"], args.model, args.max_seq_length, cache)
    parts = {s: pairs[pairs["split"] == s] for s in ("train", "val", "test")}
    x = {
        s: np.stack([cache[q] for q in p["question"]]) if len(p) else None for s, p in parts.items()
    }
    return logreg_baseline(
        x["train"],
        list(parts["train"]["intent"]),
        x["val"],
        list(parts["val"]["intent"]) if len(parts["val"]) else None,
        x["test"],
        list(parts["test"]["intent"]),
    )


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--data", type=Path, default=DATA / "customer_service" / "banking77")
    add_recipe_args(parser, epochs=30)
    parser.add_argument("--shots", type=int, default=0, help="examples per intent; 0 = full data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-seq-length", type=int, default=64)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    train_all = pd.read_csv(args.data / "train.csv").rename(columns={"category": "intent"})
    test_df = pd.read_csv(args.data / "test.csv").rename(columns={"category": "intent"})
    ours, base = [], []
    for seed in args.seeds:
        if args.shots:
            train_df = train_all.groupby("intent", group_keys=False).sample(
                n=args.shots, random_state=seed
            )
        else:
            train_df = train_all
        o, b = run_once(train_df, test_df, args, seed, 0.0 if args.shots else 0.1)
        print(f"seed {seed}: ours {o} | frozen logreg {b}", flush=True)
        ours.append(o)
        base.append(b)
    if args.shots:
        split = f"{args.shots}-shot per intent, seeds {args.seeds}, no validation"
    else:
        split = f"stratified 10% of train held out as validation, seed {args.seeds[0]}"
    protocol = (
        f"official train/test; {split}; {recipe_text(args)}, max_seq_length={args.max_seq_length}"
    )
    if args.shots:
        acc = [o["accuracy"] for o in ours]
        bacc = [b["accuracy"] for b in base]
        write_result(
            f"banking77_{args.shots}shot",
            dataset="BANKING77",
            protocol=protocol,
            metrics={
                "accuracy_mean": float(np.mean(acc)),
                "accuracy_std": float(np.std(acc)),
                "macro_f1_mean": float(np.mean([o["macro_f1"] for o in ours])),
            },
            baselines={
                "frozen_minilm_logreg": {
                    "accuracy_mean": float(np.mean(bacc)),
                    "accuracy_std": float(np.std(bacc)),
                }
            },
            anchors=ANCHORS,
            seconds=time.perf_counter() - started,
            seed=args.seeds[0],
            notes=f"per-seed ours={acc}, baseline={bacc}",
        )
    else:
        write_result(
            "banking77_full",
            dataset="BANKING77",
            protocol=protocol,
            metrics=ours[0],
            baselines={"frozen_minilm_logreg": base[0]},
            anchors=ANCHORS,
            seconds=time.perf_counter() - started,
            seed=args.seeds[0],
        )


if __name__ == "__main__":
    main()
