"""CLINC150 (full): in-scope accuracy and out-of-scope recall/precision through `customer_service`.

Protocol: official train / val / test (150 intents) with oos_val and oos_test as the out-of-scope
questions of validation and test (oos_train unused). The temperatures, the in-scope score (intent
confidence + similarity to the nearest indexed question) and the handoff threshold are fitted on
validation only: the threshold reaches `--target-oos-recall` on oos_val with
`--oos-recall-confidence` (Clopper-Pearson lower bound; 100 oos_val questions pin recall down
only to a few points). In-scope accuracy counts a handed-off
in-scope question as wrong (Larson et al. 2019). Baseline in the same run: logistic
regression on frozen MiniLM embeddings with a max-probability threshold picked on val the same way.

    python -m bench.customer_service_clinc150                 # head mode (bounded for a shared CPU)
    python -m bench.customer_service_clinc150 --mode finetune --epochs 3 --backbone-lr 1e-4
"""

from __future__ import annotations

import argparse
import json
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
    recipe_text,
    write_intent_folder,
)
from customer_service.ood import choose_threshold
from customer_service.recipes import _FROZEN_CACHES
from customer_service.training import train
from shared.artifacts import read_manifest

ANCHORS = {
    "bert": {"in_scope_accuracy": 0.969, "oos_recall": 0.403},
    "bert_threshold": {"in_scope_accuracy": 0.962, "oos_recall": 0.523},
    "goal": {"in_scope_accuracy": 0.95, "oos_recall": 0.80},
}


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["text", "intent"])


def logreg_with_threshold(
    cache,
    parts,
    oos_val,
    oos_test,
    target: float,
    confidence: float,
    model: str,
    max_seq_length: int,
) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    texts = [
        t
        for s in (parts["train"], parts["val"], parts["test"], oos_val, oos_test)
        for t in s["text"]
    ]
    cache = frozen_embeddings(texts, model, max_seq_length, dict(cache))

    def x(texts):
        return np.stack([cache[t] for t in texts])

    model = LogisticRegression(C=10.0, max_iter=3000).fit(
        x(parts["train"]["text"]), parts["train"]["intent"]
    )
    conf_val = model.predict_proba(x(parts["val"]["text"])).max(1)
    threshold, _ = choose_threshold(
        conf_val, model.predict_proba(x(oos_val["text"])).max(1), target, 0.05, confidence
    )
    proba = model.predict_proba(x(parts["test"]["text"]))
    pred = model.classes_[proba.argmax(1)]
    kept = proba.max(1) >= threshold
    oos_flag = model.predict_proba(x(oos_test["text"])).max(1) < threshold
    flagged = oos_flag.sum() + (~kept).sum()
    return {
        "in_scope_accuracy": float(((pred == parts["test"]["intent"].to_numpy()) & kept).mean()),
        "oos_recall": float(oos_flag.mean()),
        "oos_precision": float(oos_flag.sum() / max(1, flagged)),
        "threshold": float(threshold),
    }


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--data", type=Path, default=DATA / "customer_service" / "clinc150" / "data_full.json"
    )
    add_recipe_args(parser, epochs=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-oos-recall", type=float, default=0.8)
    parser.add_argument(
        "--oos-recall-confidence",
        type=float,
        default=0.9,
        help="confidence that the threshold reaches the target beyond val (0: exactly on val)",
    )
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-seq-length", type=int, default=48)
    return parser.parse_args()


def train_ours(args, parts, oos_val, oos_test) -> dict[str, float]:
    """Trains the bot on the official splits; its held-out test metrics."""
    cfg = intent_config(
        args,
        args.seed,
        target_oos_recall=args.target_oos_recall,
        oos_recall_confidence=args.oos_recall_confidence,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_intent_folder(
            Path(tmp) / "data",
            parts["train"],
            parts["test"],
            0.0,
            args.seed,
            oos=pd.concat([oos_val, oos_test]),
            val=parts["val"],
        )
        artifact = train(cfg, folder, Path(tmp) / "run")
        keep_artifact(artifact, args.keep)
        manifest = read_manifest(artifact)
        m = manifest["metrics"]
    return {
        "in_scope_accuracy": m["test_in_scope_accuracy"],
        "oos_recall": m["test_oos_recall"],
        "oos_precision": m["test_oos_precision"],
        "oos_auroc": m["test_oos_auroc"],
        "accuracy_without_handoff": m["test_accuracy"],
        "val_threshold": m["val_threshold"],
        "intent_accuracy": m["test_intent_accuracy"],
        "intent_accuracy_head_only": m.get(
            "test_intent_accuracy_head_only", m["test_intent_accuracy"]
        ),
        "head_weight": manifest["calibration"]["head_weight"],
    }


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    raw = json.loads(args.data.read_text(encoding="utf-8"))
    parts = {s: frame(raw[s]) for s in ("train", "val", "test")}
    oos_val, oos_test = (
        frame(raw["oos_val"]).assign(split="val"),
        frame(raw["oos_test"]).assign(split="test"),
    )
    ours = train_ours(args, parts, oos_val, oos_test)
    cache = _FROZEN_CACHES.get((args.model, args.max_seq_length), {})
    baselines = {
        "frozen_minilm_logreg_threshold": logreg_with_threshold(
            cache,
            parts,
            oos_val,
            oos_test,
            args.target_oos_recall,
            args.oos_recall_confidence,
            args.model,
            args.max_seq_length,
        )
    }
    write_result(
        "clinc150" if args.seed == 0 else f"clinc150_seed{args.seed}",
        dataset="CLINC150 data_full",
        anchors=ANCHORS,
        seconds=time.perf_counter() - started,
        protocol=(
            f"official train/val/test + oos_val/oos_test; threshold for OOS recall {args.target_oos_recall} "
            f"at {args.oos_recall_confidence:.0%} confidence (Clopper-Pearson) "
            f"on val only; {recipe_text(args)}, max_seq_length={args.max_seq_length}"
        ),
        metrics=ours,
        baselines=baselines,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
