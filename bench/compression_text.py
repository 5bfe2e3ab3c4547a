"""Compression of a fine-tuned finance_sentiment model: size, CPU latency and metric change per method.

Protocol: Financial PhraseBank Sentences_50Agree, the FinBERT split of `finance_phrasebank.py`
(shuffle, random_state=0: 80% train / 10% val / 10% test), written as a table with a `split`
column to --workdir (outside the project) and fine-tuned with the vertical's own `train` (MiniLM,
no zero-shot topics, seed 0). The artifact is then compressed by int8, onnx, onnx-int8,
interpolate (WiSE-FT, alpha in 0, 0.1 .. 1 chosen on val) and distill (3 of the 6 layers, trained
on the train split against the fp32 model; then also int8 of that student) through
`shared.compression`, and the seven artifacts are measured side by side in one run on one thread (`measure_runtimes`: rounds
that visit every model in turn). p50_ms: median latency of one text through `Runtime.predict`
(tokenizer and engine included); throughput: texts/s in a batch of 64; metric_delta: change of
val macro-F1 against fp32 (the split compress measures on; alpha was chosen on it too), with
test macro-F1 and an out-of-distribution score (the project's generated headlines and posts,
`finance_sentiment.generate`) beside it.

    OMP_NUM_THREADS=1 python -m bench.compression_text            # about 12 minutes on one thread
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoTokenizer

from bench.common import DATA, RESULTS, bench_parser, write_result
from bench.finance_phrasebank import FILES, LABELS, protocol_split, read_phrasebank
from finance_sentiment import VERTICAL
from finance_sentiment.compress import interpolate, validation, validation_rows
from finance_sentiment.config import FinanceConfig, FinanceTrainerConfig, TextConfig
from finance_sentiment.generate import make_labelled
from finance_sentiment.model import float_task, make_collate
from finance_sentiment.training import train
from shared.artifacts import load_json, read_manifest
from shared.compression import DEFAULT_ALPHAS, compress_artifact, format_table, measure_runtimes
from shared.registry import build_settings, load_runtime

RESULT = RESULTS / "compression_finance_sentiment.json"
METHODS = ("int8", "onnx", "onnx-int8", "interpolate", "distill", "distill+int8")
"""`a+b`: method b applied to the artifact that method a wrote."""


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--data", type=Path, default=DATA / "finance_sentiment" / "financial_phrasebank"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/compression_text"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse", action="store_true", help="keep a model trained by an earlier run"
    )
    return parser.parse_args()


def write_tables(args) -> tuple[Path, Path]:
    """PhraseBank with its protocol split, and the generated out-of-distribution set (all val)."""
    texts, y = read_phrasebank(args.data / FILES["50agree"])
    split = pd.Series("train", index=range(len(texts)))
    _, va, te = protocol_split(len(texts), seed=0)
    split[va], split[te] = "val", "test"
    table = args.workdir / "phrasebank_50agree.csv"
    frame = pd.DataFrame({"text": texts, "sentiment": [LABELS[i] for i in y], "split": split})
    frame.to_csv(table, index=False)
    ood = make_labelled(n_per_template=5, seed=args.seed).assign(split="val")
    ood.drop(columns=["topic"]).to_csv(args.workdir / "generated.csv", index=False)
    return table, args.workdir / "generated.csv"


def fine_tune(args, table: Path) -> tuple[Path, float]:
    """The fp32 artifact (the vertical's `train`) and the seconds it took (0 when reused)."""
    artifact = args.workdir / "model" / "artifact"
    if args.reuse and artifact.is_dir():
        return artifact, 0.0
    shutil.rmtree(args.workdir / "model", ignore_errors=True)
    cfg = FinanceConfig(
        model="minilm",
        topics={},  # no zero-shot topic encoder: the runtime runs the classifier alone
        text=TextConfig(max_length=64),
        trainer=FinanceTrainerConfig(epochs=args.epochs, seed=args.seed, progress=False),
    )
    started = time.perf_counter()
    return train(cfg, table, args.workdir / "model"), time.perf_counter() - started


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    table, ood_table = write_tables(args)
    artifact, train_s = fine_tune(args, table)
    folders, seconds = {"fp32": artifact}, {}
    for name in METHODS:
        shutil.rmtree(args.workdir / name, ignore_errors=True)
        first, _, method = name.rpartition("+")
        step = time.perf_counter()
        source = folders[first] if first else artifact
        compress_artifact(VERTICAL, source, args.workdir / name, method, table, measure=False)
        folders[name], seconds[name] = args.workdir / name, time.perf_counter() - step
    settings = build_settings(VERTICAL, device="cpu")
    runtimes = {name: load_runtime(VERTICAL, folder, settings) for name, folder in folders.items()}
    val = validation(artifact, table)
    rows = measure_runtimes(runtimes, folders, val, rounds=args.rounds)
    print(format_table(rows, val.metric))
    for name, data, split in (("test", table, "test"), ("ood", ood_table, "val")):
        scoring = validation(artifact, data, split)
        for key, runtime in runtimes.items():
            rows[key][f"{name}_macro_f1"] = scoring.score(runtime.predict(scoring.inputs))
    ood = ood_by_alpha(artifact, ood_table)
    report(args, artifact, folders, rows, seconds, train_s, ood, time.perf_counter() - started)


def ood_by_alpha(artifact: Path, ood_table: Path) -> dict[str, float]:
    """Out-of-distribution macro-F1 at every alpha (reported only; alpha is chosen on val)."""
    cfg = FinanceConfig.model_validate(read_manifest(artifact)["config"])
    task = float_task(artifact, load_json(artifact / "finance.json")).eval()
    collate = make_collate(AutoTokenizer.from_pretrained(str(artifact / "model")), 64)
    rows = validation_rows(cfg, ood_table)
    return interpolate(task, cfg, collate, rows, DEFAULT_ALPHAS)["scores"]


def report(args, artifact, folders, rows, seconds, train_s, ood, total_s) -> None:
    """Writes `bench/results/compression_finance_sentiment.json`: one entry per method."""
    fp32 = rows["fp32"]
    metrics = {}
    for method in METHODS:
        compression = read_manifest(folders[method])["compression"]
        metrics[method] = {
            **{k: rows[method][k] for k in ("size_mb", "p50_ms", "speedup", "metric_delta")},
            "throughput": rows[method]["throughput"],
            "throughput_speedup": rows[method]["throughput"] / fp32["throughput"],
            "val_macro_f1": rows[method]["metric"],
            **{f"{s}_macro_f1": rows[method][f"{s}_macro_f1"] for s in ("test", "ood")},
            **{
                f"{s}_delta": rows[method][f"{s}_macro_f1"] - fp32[f"{s}_macro_f1"]
                for s in ("test", "ood")
            },
            "check_vs_fp32": compression["params"].get("check"),
            "compress_seconds": round(seconds[method], 1),
        }
    for method in ("distill", "distill+int8"):  # the share of the teacher's test macro-F1 kept
        metrics[method]["metric_retained"] = rows[method]["test_macro_f1"] / fp32["test_macro_f1"]
    previous = json.loads(RESULT.read_text(encoding="utf-8")) if RESULT.is_file() else {}
    kept = {k: v for k, v in previous.get("metrics", {}).items() if k not in METHODS}
    metrics = {**metrics, **kept}  # lora_text.py's entries (lora, lora-merge) stay
    sweep = read_manifest(folders["interpolate"])["compression"]["params"]
    metrics["interpolate"].update(
        alpha=sweep["alpha"], val_macro_f1_by_alpha=sweep["scores"], ood_macro_f1_by_alpha=ood
    )
    write_result(
        "compression_finance_sentiment",
        dataset="Financial PhraseBank v1.0 Sentences_50Agree; out-of-distribution: generated headlines/posts (finance_sentiment.generate, seed 0)",
        protocol=(
            "FinBERT split (random_state=0, 80/10/10); MiniLM fine-tuned by `verticals train` "
            f"({args.epochs} epoch(s), max_length 64, seed {args.seed}, no zero-shot topics); each method by "
            "`compress_artifact` (distill+int8: int8 of the distilled student); all seven artifacts measured side by side in one run, torch and ONNX Runtime on "
            f"1 thread, {args.rounds} interleaved rounds; p50_ms = median single-text latency through "
            "Runtime.predict; speedup = fp32 p50 / p50; metric_delta = val macro-F1 change vs fp32 "
            "(alpha for interpolate chosen on val too: see test_delta); size_mb = the artifact folder on disk"
        ),
        metrics=metrics,
        baselines={"fp32": fp32},
        anchors={
            "targets": {
                **previous.get("anchors", {}).get("targets", {}),
                "int8": "speedup >= 1.5, loss <= 1 point",
                "distill": "speedup >= 2, metric_retained >= 0.97 (test macro-F1 / teacher's)",
            }
        },
        seconds=total_s,
        seed=args.seed,
        notes=f"artifact {artifact}; train_seconds {train_s:.0f} (0: reused)",
    )
    if "lora_run" in previous:  # the provenance of the kept lora entries
        result = json.loads(RESULT.read_text(encoding="utf-8"))
        result["lora_run"] = previous["lora_run"]
        RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
