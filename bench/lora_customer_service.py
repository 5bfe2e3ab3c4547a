"""LoRA against full fine-tuning for customer_service: intent accuracy, adapter size, merge, latency.

Protocol: SNIPS as `bench.generalization` runs it (official train capped to 5,000 rows drawn with
seed 0 and stratified by intent / valid 700 / test 700, 7 intents; `bench.generalization_data.
snips`). `verticals train customer_service` with the defaults from all-MiniLM-L6-v2 (3 epochs,
best epoch on validation intent accuracy, calibration and threshold on validation), then
`verticals evaluate` on the test split. Two runs, side by side (one torch thread each), seed 0:

- `finetune`: `recipe=finetune`, the whole encoder (the recipe `auto` chose for this set);
- `lora`: `adapter.method=lora`, everything else default (r=8, alpha 16, every Linear layer of
  the encoder; adapter and intent head at `trainer.lr`; see `customer_service.adapter`).

The LoRA artifact is then merged (`verticals compress --method lora-merge`, which measures both
on the validation split side by side) and scored on test again. The reported metric is the
generalization row's: intent accuracy (the right intent, handoff or not: `decision_accuracy`).
Results go into `bench/results/compression_customer_service.json` under `metrics.lora` (the
other entries are kept).

    OMP_NUM_THREADS=1 python -m bench.lora_customer_service     # about 15 minutes on two cores
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import RESULTS, bench_parser, git_commit, hardware
from bench.generalization import run_cli
from bench.generalization_data import FULL_CAPS, QUICK, snips
from shared.compression import folder_size_mb

RESULT = RESULTS / "compression_customer_service.json"
RUNS = {"finetune": ["recipe=finetune"], "lora": ["adapter.method=lora"]}
TEST_KEYS = ("decision_accuracy", "accuracy", "handoff_rate")


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lora_customer_service"))
    parser.add_argument("--result", type=Path, default=RESULT)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run (a few hundred rows, 4 steps); prints, writes no result",
    )
    return parser.parse_args()


def evaluate(artifact: Path, data: Path, out: Path) -> dict[str, float]:
    """The test-split metrics of `verticals evaluate --json`."""
    shutil.rmtree(out, ignore_errors=True)
    run_cli(
        ["evaluate", "customer_service", "--artifact", str(artifact), "--data", str(data),
         "--json", "--out", str(out)],
        out.with_suffix(".log"),
    )  # fmt: skip
    return json.loads((out / "metrics.json").read_text())["metrics"]


def run_one(name: str, train: Path, test: Path, overrides: list[str], work: Path) -> dict:
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    run_cli(
        ["train", "customer_service", "--data", str(train), "--out", str(folder / "run"),
         *overrides, *RUNS[name]],
        folder / "train.log",
    )  # fmt: skip
    seconds = time.perf_counter() - started
    artifact = folder / "run" / "artifact"
    manifest = json.loads((artifact / "manifest.json").read_text())
    scores = evaluate(artifact, test, folder / "report")
    row = {
        "overrides": RUNS[name],
        "train_seconds": round(seconds, 1),
        "val_intent_accuracy": manifest["training"].get("best"),
        **{f"test_{k}": scores[k] for k in TEST_KEYS if k in scores},
        "artifact_mb": folder_size_mb(artifact),
        "best_epoch": manifest["training"]["best_epoch"],
    }
    if manifest.get("adapter"):
        row["adapter"] = {k: v for k, v in manifest["adapter"].items() if k != "target_modules"}
        row["adapter_mb"] = folder_size_mb(artifact / "adapter")
    return row


def main() -> None:
    args = parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    prepared = snips(args.workdir / "data", QUICK if args.quick else FULL_CAPS["snips"])
    if args.quick:
        prepared.overrides = [*prepared.overrides, "trainer.max_steps=4"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(
                run_one, name, prepared.train, prepared.test, prepared.overrides, args.workdir
            )
            for name in RUNS
        }
        rows = {name: f.result() for name, f in futures.items()}
    lora = args.workdir / "lora" / "run" / "artifact"
    merged = args.workdir / "lora" / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    run_cli(
        ["compress", "customer_service", "--artifact", str(lora), "--method", "lora-merge",
         "--data", str(prepared.train), "--out", str(merged)],
        args.workdir / "merge.log",
    )  # fmt: skip
    merged_test = evaluate(merged, prepared.test, args.workdir / "merged_report")
    measured = json.loads((merged / "manifest.json").read_text())["compression"]["measured"]
    full, adapted = rows["finetune"], rows["lora"]
    encoder_mb = folder_size_mb(args.workdir / "finetune" / "run" / "artifact" / "encoder")
    adapted["encoder_mb_of_the_full_run"] = encoder_mb
    entry = {
        **adapted,
        "finetune": full,
        "merged_test_decision_accuracy": merged_test["decision_accuracy"],
        "merged_measured_on_val": measured,
        "metric_delta": adapted["test_decision_accuracy"] - full["test_decision_accuracy"],
        "val_metric_delta": (adapted["val_intent_accuracy"] or 0)
        - (full["val_intent_accuracy"] or 0),
        "adapter_share_of_model": adapted["adapter_mb"] / encoder_mb,
        "protocol": (
            f"{prepared.protocol}; `verticals train customer_service` defaults (recipe=finetune "
            "vs adapter.method=lora), seed 0, one torch thread each side by side; test metrics "
            "by `verticals evaluate`; metric_delta = LoRA test intent accuracy (decision_accuracy)"
            " - full fine-tune's; adapter_share_of_model = adapter folder MB / the full run's "
            "encoder folder MB"
        ),
        "commit": git_commit(),
        "hardware": hardware(),
    }
    print(json.dumps({k: v for k, v in entry.items() if k != "hardware"}, indent=2))
    if args.quick:
        return
    result = json.loads(args.result.read_text()) if args.result.exists() else {"metrics": {}}
    result.setdefault("metrics", {})["lora"] = entry
    args.result.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
