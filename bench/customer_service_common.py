"""Helpers of the customer_service benchmarks: data folders in our schema, the frozen baseline,
the training recipe flags and the flags of the KB-size request benchmarks."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from customer_service.config import CustomerServiceConfig


def write_intent_folder(
    folder: Path,
    train: pd.DataFrame,
    test: pd.DataFrame,
    val_fraction: float,
    seed: int,
    oos: pd.DataFrame | None = None,
    val: pd.DataFrame | None = None,
) -> Path:
    """Writes kb.csv (one answer per intent, its name as text) and pairs.csv with a fixed split column.

    `train`/`test`/`val` have columns `text, intent`. Without `val`, a stratified `val_fraction` of
    train is held out (never trained on).
    """
    from shared.data import split_indices

    folder.mkdir(parents=True, exist_ok=True)
    intents = sorted(set(train["intent"]) | set(test["intent"]))
    kb = pd.DataFrame(
        {"answer_id": intents, "answer": [i.replace("_", " ") for i in intents], "intent": intents}
    )
    kb.to_csv(folder / "kb.csv", index=False)
    train = train.reset_index(drop=True).assign(split="train")
    if val is None and val_fraction > 0:
        _, va, _ = split_indices(
            len(train),
            labels=list(train["intent"]),
            val_fraction=val_fraction,
            test_fraction=0.0,
            seed=seed,
        )
        train.loc[va, "split"] = "val"
    frames = [train, test.assign(split="test")] + (
        [val.assign(split="val")] if val is not None else []
    )
    pairs = pd.concat(frames, ignore_index=True).rename(columns={"text": "question"})
    pairs[["question", "intent", "split"]].to_csv(folder / "pairs.csv", index=False)
    if oos is not None:
        oos.rename(columns={"text": "question"})[["question", "split"]].to_csv(
            folder / "out_of_scope.csv", index=False
        )
    return folder


def logreg_baseline(
    x_train: np.ndarray,
    y_train: list[str],
    x_val: np.ndarray | None,
    y_val: list[str] | None,
    x_test: np.ndarray,
    y_test: list[str],
) -> dict[str, float]:
    """Logistic regression on frozen embeddings; C picked on validation when there is one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    best_c, best = 10.0, -1.0
    if x_val is not None and len(x_val):
        for c in (1.0, 10.0, 100.0):
            model = LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)
            score = accuracy_score(y_val, model.predict(x_val))
            if score > best:
                best_c, best = c, score
    model = LogisticRegression(C=best_c, max_iter=3000).fit(x_train, y_train)
    pred = model.predict(x_test)
    return {
        "accuracy": float(accuracy_score(y_test, pred)),
        "macro_f1": float(f1_score(y_test, pred, average="macro")),
        "C": best_c,
    }


def add_recipe_args(parser, epochs: int) -> None:
    """Training-recipe flags shared by the intent benchmarks."""
    parser.add_argument("--mode", choices=("head", "finetune"), default="head")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--lr", type=float, default=None, help="head lr (5e-3 head mode, 2e-3 finetune)"
    )
    parser.add_argument("--backbone-lr", type=float, default=5e-5)
    parser.add_argument("--schedule", choices=("linear", "cosine", "constant"), default="linear")
    parser.add_argument("--keep", type=Path, default=None, help="copy the trained artifact here")


def recipe(args, seed: int) -> dict:
    """The `trainer` overrides for the flags of `add_recipe_args`."""
    frozen = args.mode == "head"
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": seed,
        "progress": False,
        "freeze_backbone_epochs": args.epochs if frozen else 0,
        "lr": args.lr if args.lr is not None else (5e-3 if frozen else 2e-3),
        "backbone_lr": args.backbone_lr,
        "schedule": args.schedule,
    }


def intent_config(args, seed: int, **overrides) -> CustomerServiceConfig:
    """The bot's config for an intent benchmark: the recipe flags, `--model` and
    `--max-seq-length`, dense retrieval only, plus `overrides`."""
    from shared.config import load_config

    base = {
        "model": args.model,
        "max_seq_length": args.max_seq_length,
        "hybrid": "off",
        "trainer": recipe(args, seed),
    }
    return load_config(CustomerServiceConfig, overrides={**base, **overrides})


def frozen_embeddings(
    texts: Iterable[str], model: str, max_seq_length: int, cache: dict | None = None
) -> dict[str, np.ndarray]:
    """Frozen-encoder vectors of `texts` by text: `cache` (a head-mode run's) with the missing
    ones (e.g. de-duplicated training questions) embedded and added."""
    from shared.models import embed_texts, load_model

    cache = {} if cache is None else cache
    missing = list(dict.fromkeys(t for t in texts if t not in cache))
    if missing:
        encoder = load_model(model, "sentence-encoder")
        encoder.max_seq_length = max_seq_length
        embed_texts(encoder, missing, cache=cache)
    return cache


def recipe_text(args) -> str:
    lr = args.lr if args.lr is not None else (5e-3 if args.mode == "head" else 2e-3)
    return (
        f"mode={args.mode}, epochs={args.epochs}, batch={args.batch_size}, lr={lr}, "
        f"backbone_lr={args.backbone_lr}, schedule={args.schedule}"
    )


def keep_artifact(artifact: Path, dest: Path | None) -> None:
    if dest is not None:
        import shutil

        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(artifact, dest)


def request_bench_parser(
    doc: str, requests: int, artifact_required: bool
) -> argparse.ArgumentParser:
    """Flags of the benchmarks that answer messages over a KB grown to `--kb-size` answers."""
    from bench.common import bench_parser

    parser = bench_parser(doc)
    parser.add_argument("--artifact", type=Path, required=artifact_required, default=None)
    parser.add_argument("--kb-size", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=requests)
    return parser


def demo_messages() -> list[str]:
    """Every phrasing of the demo bank's questions."""
    from customer_service.kb_data import KB

    return [q for _, _, phrasings in KB.values() for q in phrasings.split("|")]
