"""LoRA against full fine-tuning for medical_imaging: AUC, accuracy, adapter size, merge.

Protocol: PneumoniaMNIST 28 px (MedMNIST v2 official train 4,708 / val 524 / test 624), as
`bench.generalization` runs it: `verticals train medical_imaging` with the defaults (EfficientNet-
Lite0 from its packaged ImageNet weights, `image_size` and `in_chans` inferred, 6 epochs, early
stopping and the best epoch on val AUC, temperature and threshold on val), then
`verticals evaluate` on the test arrays. Two runs, side by side in one process pool (one torch
thread each), seed 0:

- `finetune`: `recipe=finetune`, the whole network (the recipe `auto` chose for this set);
- `lora`: `adapter.method=lora`, everything else default (r=8, alpha 16, the ungrouped
  convolutions adapted, the norm layers trained inside the adapter; see `medical_imaging.lora`).

The LoRA artifact is then merged (`verticals compress --method lora-merge`) and its test AUC
checked again. Results go into `bench/results/compression_medical_imaging.json` under
`metrics.lora` (the other entries are kept).

    OMP_NUM_THREADS=1 python -m bench.lora_imaging      # about 15 minutes on two cores
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import DATA, RESULTS, bench_parser, git_commit, hardware
from shared.compression import folder_size_mb

RESULT = RESULTS / "compression_medical_imaging.json"
SOURCE = DATA / "medical_imaging" / "pneumoniamnist" / "pneumoniamnist.npz"
LABELS = ["label_map.0=normal", "label_map.1=pneumonia"]
RUNS = {
    "finetune": ["recipe=finetune"],
    "lora": ["adapter.method=lora"],
    "lora_r4": ["adapter.method=lora", "adapter.r=4", "adapter.alpha=8"],
}
"""`lora_r4` is a variant beside the default (`--variant lora_r4`): half the rank, for size."""


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--data", type=Path, default=SOURCE)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lora_imaging"))
    parser.add_argument("--result", type=Path, default=RESULT)
    parser.add_argument(
        "--variant",
        choices=["lora_r4"],
        help="train only this variant; stored as metrics.<variant> beside metrics.lora, its "
        "delta against the full fine-tune that metrics.lora holds",
    )
    return parser.parse_args()


def cli(args: list[str], log: Path) -> None:
    """`verticals ARGS` in a child process with one torch thread; its output in `log`."""
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "shared.cli", *args]
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=_env(env))
    if done.returncode:
        raise RuntimeError(f"{' '.join(args[:2])} failed, see {log}")


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def evaluate(artifact: Path, data: Path, out: Path) -> dict[str, float]:
    """The test-split metrics of `verticals evaluate --json`."""
    shutil.rmtree(out, ignore_errors=True)
    cli(
        ["evaluate", "medical_imaging", "--artifact", str(artifact), "--data", str(data),
         "--json", "--out", str(out)],
        out.with_suffix(".log"),
    )  # fmt: skip
    return json.loads((out / "metrics.json").read_text())["metrics"]


def run_one(name: str, data: Path, work: Path) -> dict:
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    cli(
        ["train", "medical_imaging", "--data", str(data), "--out", str(folder / "run"),
         *LABELS, *RUNS[name]],
        folder / "train.log",
    )  # fmt: skip
    seconds = time.perf_counter() - started
    artifact = folder / "run" / "artifact"
    manifest = json.loads((artifact / "manifest.json").read_text())
    test = evaluate(artifact, data, folder / "report")
    row = {
        "overrides": RUNS[name],
        "train_seconds": round(seconds, 1),
        "val_auc": manifest["metrics"].get("val_auc"),
        "test_auc": test["auc"],
        "test_accuracy": test["accuracy"],
        "artifact_mb": folder_size_mb(artifact),
        "best_epoch": manifest["training"]["best_epoch"],
    }
    if "adapter" in manifest and manifest["adapter"]:
        section = manifest["adapter"]
        row["adapter"] = {k: v for k, v in section.items() if k != "base_sha256"}
        row["adapter_mb"] = folder_size_mb(artifact / "adapter")
    return row


def main() -> None:
    args = parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.variant:
        return run_variant(args)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_one, name, args.data, args.workdir) for name in RUNS}
        rows = {name: f.result() for name, f in futures.items()}
    lora = args.workdir / "lora" / "run" / "artifact"
    merged = args.workdir / "lora" / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    cli(
        ["compress", "medical_imaging", "--artifact", str(lora), "--method", "lora-merge",
         "--data", str(args.data), "--out", str(merged)],
        args.workdir / "merge.log",
    )  # fmt: skip
    merged_test = evaluate(merged, args.data, args.workdir / "merged_report")
    full, adapted = rows["finetune"], rows["lora"]
    model_mb = full["artifact_mb"]
    entry = {
        **adapted,
        "finetune": full,
        "merged_test_auc": merged_test["auc"],
        "merged_test_accuracy": merged_test["accuracy"],
        "metric_delta": adapted["test_auc"] - full["test_auc"],
        "val_metric_delta": (adapted["val_auc"] or 0) - (full["val_auc"] or 0),
        "adapter_share_of_model": adapted["adapter_mb"] / model_mb,
        "protocol": (
            "PneumoniaMNIST 28 px official splits; `verticals train medical_imaging` defaults "
            "(recipe=finetune vs adapter.method=lora), seed 0, one torch thread each side by "
            "side; test metrics by `verticals evaluate` on the test arrays; metric_delta = LoRA "
            "test AUC - full fine-tune test AUC; adapter_share_of_model = adapter folder MB / "
            "full artifact MB"
        ),
        "commit": git_commit(),
        "hardware": hardware(),
    }
    result = json.loads(args.result.read_text()) if args.result.exists() else {"metrics": {}}
    result.setdefault("metrics", {})["lora"] = entry
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in entry.items() if k not in ("hardware",)}, indent=2))


def run_variant(args) -> None:
    result = json.loads(args.result.read_text())
    full = result["metrics"]["lora"]["finetune"]
    row = run_one(args.variant, args.data, args.workdir)
    entry = {
        **row,
        "metric_delta": row["test_auc"] - full["test_auc"],
        "val_metric_delta": (row["val_auc"] or 0) - (full["val_auc"] or 0),
        "adapter_share_of_model": row["adapter_mb"] / full["artifact_mb"],
        "protocol": "as metrics.lora, a variant beside the default; deltas against the full "
        "fine-tune of metrics.lora's run",
        "commit": git_commit(),
        "hardware": hardware(),
    }
    result["metrics"][args.variant] = entry
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in entry.items() if k != "hardware"}, indent=2))


if __name__ == "__main__":
    main()
