"""Task-adaptive pretraining (TAPT): `verticals pretrain` on the training texts, then the default train.

For each data set, in one run: the default `verticals train` from MiniLM, and the same train from
an encoder that `verticals pretrain` (its default objective) continued on the training split's
texts with the labels removed (never the validation or test texts). Both are scored by
`verticals evaluate` on the test split. Data sets and splits are those of `bench.generalization`.

    python -m bench.tapt [--only financial_phrasebank] [--max-texts N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import RESULTS, write_result
from bench.generalization import artifact_manifest, finance_ours, run_cli, train_and_evaluate
from bench.generalization_data import Caps, financial_phrasebank, semeval2017_task5_headlines

DATASETS = {
    "financial_phrasebank": financial_phrasebank,
    "semeval2017_task5_headlines": semeval2017_task5_headlines,
}
METRICS = ("accuracy", "macro_f1", "cosine", "r2")
"""Reported where the data set has them (cosine and R^2: the predicted score against the gold)."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DATASETS), help="comma-separated data sets")
    parser.add_argument("--work", type=Path, default=Path("runs/tapt"))
    parser.add_argument("--max-texts", type=int, default=None, help="cap on pretraining texts")
    parser.add_argument(
        "--reuse", action="store_true", help="keep an encoder an earlier run pretrained in --work"
    )
    return parser.parse_args()


def run_one(name: str, work: Path, max_texts: int | None, reuse: bool = False) -> dict:
    """Both trains on one data set; the test metrics of each, the deltas and the seconds."""
    prepared = DATASETS[name](work / "data", Caps())
    texts = prepared.tables["train"]["text"].astype(str).tolist()  # training split only
    unlabelled = work / "unlabelled.txt"
    unlabelled.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    encoder = work / "tapt"
    record = encoder / "pretrain.json"
    if reuse and record.is_file():  # an earlier run's encoder, on the same texts
        pretrain_seconds = json.loads(record.read_text(encoding="utf-8")).get("seconds")
    else:
        started = time.perf_counter()
        pretrain = ["pretrain", "finance_sentiment", "--data", str(unlabelled), "--overwrite"]
        extra = [f"max_texts={max_texts}"] if max_texts else []
        run_cli([*pretrain, "--out", str(encoder), *extra], work / "pretrain.log")
        pretrain_seconds = time.perf_counter() - started
    base, base_time = train_and_evaluate(prepared, work / "base")
    base = finance_ours(base, prepared, work / "base")
    base_manifest = artifact_manifest(work / "base" / "run" / "artifact")
    prepared.overrides = [*prepared.overrides, f"model={encoder.resolve()}"]
    tapt, tapt_time = train_and_evaluate(prepared, work / "tapt_run")
    tapt = finance_ours(tapt, prepared, work / "tapt_run")
    tapt_manifest = artifact_manifest(work / "tapt_run" / "run" / "artifact")
    scored = [m for m in METRICS if m in base and m in tapt]
    return {
        "dataset": name,
        "protocol": prepared.protocol,
        "pretraining_texts": len(texts) if not max_texts else min(len(texts), max_texts),
        "metrics": {
            **{f"tapt_{m}": tapt[m] for m in scored},
            **{f"base_{m}": base[m] for m in scored},
            **{f"delta_{m}": tapt[m] - base[m] for m in scored},
        },
        "recipes": {
            "base": base_manifest.get("recipe", {}).get("recipe"),
            "tapt": tapt_manifest.get("recipe", {}).get("recipe"),
        },
        "seconds": {
            "pretrain": round(pretrain_seconds, 1) if pretrain_seconds else None,
            "train_base": round(base_time["train"], 1),
            "train_tapt": round(tapt_time["train"], 1),
        },
    }


def earlier_rows() -> list[dict]:
    """The rows of `bench/results/tapt.json`, which a run of other data sets keeps."""
    path = RESULTS / "tapt.json"
    if not path.is_file():
        return []
    return json.loads(json.loads(path.read_text(encoding="utf-8"))["notes"]).get("rows", [])


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    rows = {row["dataset"]: row for row in earlier_rows()}  # other data sets' earlier runs
    for name in args.only.split(","):
        row = run_one(name, args.work / name, args.max_texts, args.reuse)
        rows[name] = row
        print(name, json.dumps(row["metrics"]), f"pretrain {row['seconds']['pretrain']} s")
    rows = list(rows.values())
    write_result(
        "tapt",
        dataset=",".join(r["dataset"] for r in rows),
        protocol=(
            "per data set: default `verticals train finance_sentiment` from MiniLM vs from "
            "`verticals pretrain` (default objective, SimCSE) on the training split's texts, "
            "labels removed; both scored on the test split by `verticals evaluate`"
        ),
        metrics={f"{r['dataset']}.{k}": v for r in rows for k, v in r["metrics"].items()},
        baselines={},
        anchors={},
        seconds=time.perf_counter() - started,
        seed=0,
        notes=json.dumps({"rows": rows}),
    )


if __name__ == "__main__":
    main()
