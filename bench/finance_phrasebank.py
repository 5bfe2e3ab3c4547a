"""Financial PhraseBank, FinBERT protocol: fine-tuned MiniLM vs the frozen-embedding floor.

Protocol: Sentences_50Agree (or AllAgree), latin-1, lines `sentence@label` (lines without `@`
skipped); shuffle split with random_state=0: 80% train, then the remaining 20% halved into
validation and test (80/10/10). Early stopping / best epoch on validation only; figures on test.
Baseline in the same run: frozen mean-pooled MiniLM embeddings + logistic regression (C picked
on validation), trained on the same train split.

Full run:    python bench/finance_phrasebank.py --subset 50agree --epochs 4
Smaller run: python bench/finance_phrasebank.py --subset 50agree --epochs 1 --max-train 1500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, bench_parser, write_result  # noqa: E402
from finance_sentiment.config import FinanceConfig, FinanceTrainerConfig, TextConfig  # noqa: E402
from finance_sentiment.training import evaluate_rows, fit_sentiment, write_finance_artifact  # noqa: E402

FILES = {"50agree": "Sentences_50Agree.txt", "allagree": "Sentences_AllAgree.txt"}
LABELS = ["negative", "neutral", "positive"]
ANCHORS = {
    "FinBERT (110M) 50Agree": {"accuracy": 0.86, "macro_f1": 0.84},
    "FinBERT (110M) AllAgree": {"accuracy": 0.97},
    "frozen MiniLM + LR floor (BENCHMARKS.md, 80/20)": {"accuracy": 0.781, "macro_f1": 0.749},
}


def read_phrasebank(path: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for line in path.read_text(encoding="latin-1").splitlines():
        if "@" not in line:
            continue
        text, label = line.rsplit("@", 1)
        if label.strip() in LABELS:
            texts.append(text.strip())
            labels.append(LABELS.index(label.strip()))
    return texts, np.array(labels)


def protocol_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    train, rest = train_test_split(idx, test_size=0.2, random_state=seed, shuffle=True)
    val, test = train_test_split(rest, test_size=0.5, random_state=seed, shuffle=True)
    return train, val, test


def frozen_baseline(texts, y, tr, va, te, model: str) -> dict[str, float]:
    """Mean-pooled frozen encoder + logistic regression (C chosen on validation)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from shared.models import load_model

    encoder = load_model(model, "sentence-encoder")
    x = encoder.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
    best = None
    for c in (0.1, 1.0, 10.0):
        clf = LogisticRegression(max_iter=3000, C=c).fit(x[tr], y[tr])
        score = f1_score(y[va], clf.predict(x[va]), average="macro")
        best = max(best or (score, c, clf), (score, c, clf), key=lambda t: t[0])
    pred = best[2].predict(x[te])
    return {
        "accuracy": float(accuracy_score(y[te], pred)),
        "macro_f1": float(f1_score(y[te], pred, average="macro")),
        "C": best[1],
    }


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--subset", choices=list(FILES), default="50agree")
    parser.add_argument(
        "--data", type=Path, default=DATA / "finance_sentiment" / "financial_phrasebank"
    )
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--max-train", type=int, default=None, help="use only the first N train rows (smaller run)"
    )
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/finance_bench"))
    parser.add_argument("--skip-baseline", action="store_true")
    return parser.parse_args()


def fine_tune(args, rows, tr, va, te) -> tuple[dict[str, float], Any, float]:
    """Fine-tunes on the `tr` rows (best epoch by val macro-F1), writes the artifact, scores `te`.

    Returns the test metrics, the `TrainResult` and the seconds spent fitting.
    """
    started = time.perf_counter()
    cfg = FinanceConfig(
        model=args.model,
        topics={},
        text=TextConfig(max_length=args.max_length),
        trainer=FinanceTrainerConfig(  # heads 1e-3, body 5e-5; best epoch by val macro-F1
            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False
        ),
    )
    run_dir = args.out / f"phrasebank_{args.subset}"
    task, tokenizer, collate, result = fit_sentiment(
        cfg, [rows[i] for i in tr], [rows[i] for i in va], 0, run_dir / "run"
    )
    train_s = time.perf_counter() - started
    metrics = evaluate_rows(task, collate, [rows[i] for i in te], LABELS)
    test_metrics = {f"test_{k}": v for k, v in metrics.items()}
    test_metrics.update(monitor=result.monitor, best_epoch=result.best_epoch)
    write_finance_artifact(
        run_dir / "artifact",
        cfg,
        task,
        tokenizer,
        [],
        False,
        test_metrics,
        f"phrasebank-{args.subset}",
    )
    return metrics, result, train_s


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    texts, y = read_phrasebank(args.data / FILES[args.subset])
    tr, va, te = protocol_split(len(texts), seed=0)
    tr_used = tr[: args.max_train] if args.max_train else tr
    rows = [(t, int(label), -100) for t, label in zip(texts, y, strict=True)]
    metrics, result, train_s = fine_tune(args, rows, tr_used, va, te)
    baselines = {}
    if not args.skip_baseline:
        with torch.inference_mode():
            baselines["frozen_minilm_logreg"] = frozen_baseline(texts, y, tr, va, te, args.model)
    full = args.max_train is None
    write_result(
        f"phrasebank_{args.subset}",
        dataset=f"Financial PhraseBank v1.0 {FILES[args.subset]} ({len(texts)} sentences)",
        protocol=(
            "shuffle split random_state=0: 80% train / 10% val / 10% test (train_test_split 0.2, then the "
            f"20% halved); metrics on test ({len(te)} rows); best epoch by {result.monitor}; "
            f"train rows used {len(tr_used)} of {len(tr)}" + ("" if full else " (SMALLER RUN)")
        ),
        metrics={
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "ece": metrics["ece"],
            "epochs": args.epochs,
            "best_epoch": result.best_epoch,
            "train_seconds": round(train_s, 1),
        },
        baselines=baselines,
        anchors=ANCHORS,
        seconds=time.perf_counter() - started,
        seed=args.seed,
        notes=f"model {args.model} (22M), mean pooling + linear head, head lr 1e-3, body lr 5e-5, "
        f"batch {args.batch_size}, max_length {args.max_length}",
    )


if __name__ == "__main__":
    main()
