"""LoRA against full fine-tuning for finance_sentiment: metric, adapter size, latency, merge.

Protocol: Financial PhraseBank Sentences_50Agree with the FinBERT split of `finance_phrasebank.py`
(random_state=0: 80% train / 10% val / 10% test), as `compression_text.py` writes it. MiniLM is
trained twice by the vertical's own `train` with the same settings (`--epochs`, 1 by default as
in `compression_text.py`, whose fp32 baseline it reproduces; batch 16, max_length 64, seed 0,
best epoch on val macro-F1, no zero-shot topics): once fully (body lr 5e-5, heads 1e-3), once
with LoRA on query and value (`adapter: {method: lora, target_modules: [query, value]}`, r=8,
alpha=16, dropout 0.1; adapter and heads at 1e-3, base frozen), once with LoRA on every Linear
layer of the body (`adapter: {method: lora}`, the default `target_modules: all-linear`, the same
r, alpha and learning rate), and once with
`adapter: {method: ia3}` (peft's default layers). One epoch, not the vertical's default 3, keeps the run near 15
minutes on one thread of a shared machine (3 epochs of both: about 35 minutes there). The adapter artifact is then merged
(`verticals compress --method lora-merge`), and the three artifacts are measured side by side
on one thread (`measure_runtimes`: p50 of one text through `Runtime.predict`).

Results go into `bench/results/compression_finance_sentiment.json` under `metrics.lora`,
`metrics.lora_all_linear`, `metrics["lora-merge"]` and `metrics.ia3` (`--adapters` picks which
run; the entries of the others are kept, each with the full fine-tune of its own run).

    OMP_NUM_THREADS=1 python -m bench.lora_text       # about 15 minutes on one thread
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from bench.common import DATA, RESULTS, bench_parser, git_commit, hardware
from bench.compression_text import write_tables
from finance_sentiment import VERTICAL
from finance_sentiment.compress import validation
from finance_sentiment.config import FinanceConfig, FinanceTrainerConfig, TextConfig
from finance_sentiment.training import train
from shared.adapters import AdapterConfig
from shared.artifacts import library_versions, read_manifest
from shared.compression import compress_artifact, format_table, measure_runtimes
from shared.registry import build_settings, load_runtime

RESULT = RESULTS / "compression_finance_sentiment.json"
SCORES = ("val_macro_f1", "test_macro_f1", "test_accuracy")
ADAPTERS = {
    "lora": AdapterConfig(target_modules=["query", "value"]),
    "lora_all_linear": AdapterConfig(),  # the default: target_modules all-linear
    "ia3": AdapterConfig(method="ia3"),
}
"""The adapters compared: LoRA on peft's default layers (query, value), LoRA on every Linear
layer of the body (as QLoRA adapts), and IA3."""


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--data", type=Path, default=DATA / "finance_sentiment" / "financial_phrasebank"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lora_text"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--adapters",
        default=",".join(ADAPTERS),
        help="which adapters to train beside the full fine-tune (comma-separated; the first "
        "LoRA one is merged); entries of the others in the result file are kept",
    )
    return parser.parse_args()


def fit(args, table: Path, name: str, adapter: AdapterConfig | None) -> tuple[Path, float]:
    """One artifact trained by the vertical's `train`, and its seconds."""
    shutil.rmtree(args.workdir / name, ignore_errors=True)
    cfg = FinanceConfig(
        model="minilm",
        topics={},
        adapter=adapter,
        recipe="finetune",
        text=TextConfig(max_length=64),
        trainer=FinanceTrainerConfig(epochs=args.epochs, seed=args.seed, progress=False),
    )
    started = time.perf_counter()
    artifact = train(cfg, table, args.workdir / name)
    return artifact, time.perf_counter() - started


def weight_bytes(artifact: Path) -> int:
    """Bytes of the artifact's weight files (safetensors)."""
    return sum(p.stat().st_size for p in artifact.rglob("*.safetensors"))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    table, _ = write_tables(args)
    names = [n.strip() for n in args.adapters.split(",") if n.strip()]
    full, full_s = fit(args, table, "full", None)
    folders, seconds = {"full": full}, {"full": full_s}
    for name in names:
        folders[name], seconds[name] = fit(args, table, name, ADAPTERS[name])
    merged = args.workdir / "lora-merge"
    shutil.rmtree(merged, ignore_errors=True)
    step = time.perf_counter()
    source = next(n for n in names if ADAPTERS[n].method == "lora")
    section = compress_artifact(
        VERTICAL, folders[source], merged, "lora-merge", table, measure=False
    )
    seconds["lora-merge"] = time.perf_counter() - step
    folders["lora-merge"] = merged
    settings = build_settings(VERTICAL, device="cpu")
    runtimes = {k: load_runtime(VERTICAL, f, settings) for k, f in folders.items()}
    val = validation(full, table)
    rows = measure_runtimes(runtimes, folders, val, rounds=args.rounds)
    print(format_table(rows, val.metric))
    scores = {
        k: {s: read_manifest(folders[k])["metrics"][s] for s in SCORES} for k in ["full", *names]
    }
    scores["lora-merge"] = {}
    for split in ("val", "test"):  # the merged artifact keeps the adapter's recorded metrics
        scoring = validation(full, table, split)
        predicted = runtimes["lora-merge"].predict(scoring.inputs)
        scores["lora-merge"][f"{split}_macro_f1"] = scoring.score(predicted)
    report(args, names, source, folders, rows, scores, section, seconds, started)


def adapter_entry(name: str, folders, rows, scores, seconds) -> dict:
    """An adapter artifact's row: size, latency, scores and their change against the full
    fine-tune, its share of the model's bytes and parameters, and its training time."""
    adapter = read_manifest(folders[name])["adapter"]
    full = {**rows["full"], **scores["full"], "train_seconds": round(seconds["full"], 1)}
    return {
        **{k: rows[name][k] for k in ("size_mb", "p50_ms", "speedup", "metric_delta")},
        "throughput": rows[name]["throughput"],
        **scores[name],
        **{f"{s}_delta": scores[name][s] - scores["full"][s] for s in SCORES},
        "adapter_weight_bytes": weight_bytes(folders[name]),
        "full_weight_bytes": weight_bytes(folders["full"]),
        "adapter_share_of_model": weight_bytes(folders[name]) / weight_bytes(folders["full"]),
        "adapter_parameters": adapter["adapter_parameters"],
        "base_parameters": adapter["base_parameters"],
        "train_seconds": round(seconds[name], 1),
        "train_speedup": seconds["full"] / seconds[name],
        "baseline_full_finetune": full,
        "protocol": " ".join(__doc__.split("Protocol: ", 1)[1].split("\n\nResults")[0].split()),
    }


def report(args, names, source, folders, rows, scores, section, seconds, started) -> None:
    """Adds each adapter of `names` and `lora-merge` (of `source`) to the compression results,
    keeping every other entry."""
    entries = {n: adapter_entry(n, folders, rows, scores, seconds) for n in names}
    merge = {
        **{k: rows["lora-merge"][k] for k in ("size_mb", "p50_ms", "speedup", "metric_delta")},
        "throughput": rows["lora-merge"]["throughput"],
        **scores["lora-merge"],
        "merged_from": source,
        "check_vs_adapter": section["params"]["check"],
        "compress_seconds": round(seconds["lora-merge"], 1),
    }
    result = json.loads(RESULT.read_text(encoding="utf-8"))
    result["metrics"] |= entries | {"lora-merge": merge}
    result["anchors"].setdefault("targets", {})["lora"] = (
        "within 1 point of full fine-tuning (test macro-F1), adapter under 5% of the model's size"
    )
    result["lora_run"] = {
        "seconds": round(time.perf_counter() - started, 1),
        "hardware": hardware(),
        "versions": library_versions(),
        "commit": git_commit(),
        "seed": args.seed,
        "adapters": names,
        "note": f"metrics of {', '.join(names)} and lora-merge compare with the full fine-tune of "
        "their run (each entry's baseline_full_finetune: speedup and metric_delta are against it), "
        f"not with baselines.fp32 of the other entries (compression_text.py's own fine-tune); "
        f"{args.epochs} epoch(s) each",
    }
    RESULT.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(entries | {"lora-merge": merge}, indent=2))


if __name__ == "__main__":
    main()
