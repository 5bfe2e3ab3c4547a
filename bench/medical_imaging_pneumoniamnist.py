"""PneumoniaMNIST (MedMNIST v2): official train/val/test, at 28 px or upsampled, with our own code.

Trains through `verticals train medical_imaging` (the same `train` a user calls) on the npz's
train split; early stopping, temperature and threshold use the val split only; figures are on the
test split, through the artifact's runtime (`verticals evaluate`). Writes
`bench/results/pneumoniamnist_28.json` or `bench/results/pneumoniamnist_upsampled.json`.

    python bench/medical_imaging_pneumoniamnist.py --size 28
    python bench/medical_imaging_pneumoniamnist.py --size 64 --epochs 3   # upsampled
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from bench.common import DATA, ROOT, Timer, bench_parser, write_result
from medical_imaging import VERTICAL, MedicalImagingConfig
from medical_imaging.datasets import load_images, read_source
from shared.config import load_config
from shared.registry import load_runtime

ANCHORS = {
    "ResNet-18 (28), MedMNIST v2 Table 3": {"auc": 0.944, "accuracy": 0.854},
    "ResNet-50 (224), MedMNIST v2 Table 3": {"auc": 0.962, "accuracy": 0.884},
    "AutoKeras, MedMNIST v2 Table 3": {"auc": 0.947, "accuracy": 0.878},
    "Google AutoML Vision, MedMNIST v2 Table 3": {"auc": 0.991, "accuracy": 0.946},
}
DEFAULT_DATA = DATA / "medical_imaging" / "pneumoniamnist" / "pneumoniamnist.npz"


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--size", type=int, default=28, help="model input side; 28 is native, more is upsampled"
    )
    parser.add_argument(
        "--epochs", type=int, default=10, help="full protocol: 10 (early stopping on val AUC)"
    )
    parser.add_argument("--freeze-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--backbone-lr", type=float, default=5e-4)
    parser.add_argument(
        "--max-train", type=int, default=None, help="cap on training images (bounded runs)"
    )
    parser.add_argument("--threshold", choices=["youden", "sensitivity"], default="youden")
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_pneumoniamnist")
    return parser.parse_args()


def throughput(runtime, pixels: torch.Tensor, batch_size: int = 32, repeats: int = 3) -> float:
    """Images per second through the runtime's engine (batches of `batch_size`), best of `repeats`."""
    items = list(pixels.float())
    runtime.engine.run(items[:batch_size])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        runtime.engine.run(items)
        best = min(best, time.perf_counter() - started)
    return len(items) / best


def config_from(args: argparse.Namespace) -> MedicalImagingConfig:
    """The training config of the protocol; early stopping and the best epoch on val AUC."""
    overrides = {
        "image_size": args.size,
        "in_chans": 1,
        "class_names": ["normal", "pneumonia"],  # the dataset's codes 0 and 1 (MedMNIST INFO)
        "max_images": args.max_train,
        "tta": args.tta,
        "calibration": {"threshold_method": args.threshold, "target_sensitivity": 0.95},
        "trainer": {
            "epochs": args.epochs,
            "freeze_backbone_epochs": args.freeze_epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "backbone_lr": args.backbone_lr,
            "seed": args.seed,
            "progress": False,
            "early_stopping_patience": 3,
        },
    }
    return load_config(MedicalImagingConfig, overrides=overrides)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from(args)
    out = args.out / f"size{args.size}"
    with Timer() as total:
        artifact = VERTICAL.train(cfg, args.data, out)
        runtime = load_runtime(VERTICAL, artifact)  # device etc. from VERTICALS_* variables
        test = VERTICAL.evaluate(runtime, args.data).metrics
        source = read_source(args.data)
        test_idx = [i for i, s in enumerate(source.splits) if s == "test"]
        images_per_s = throughput(runtime, load_images(source, test_idx, args.size, 1))
    from shared.artifacts import load_json, read_manifest

    manifest, calibration = read_manifest(artifact), load_json(artifact / "calibration.json")
    metrics = {
        "auc": test["auc"],
        "accuracy": test["accuracy"],
        "sensitivity": test["sensitivity"],
        "specificity": test["specificity"],
        "ece": test["ece"],
        "ece_uncalibrated": test["ece_uncalibrated"],
        "accuracy_argmax": test["accuracy_argmax"],
        "threshold": calibration["threshold"],
        "temperature": calibration["temperature"],
        "val_auc": manifest["metrics"]["val_auc"],
        "train_seconds": manifest["metrics"]["train_seconds"],
        "best_epoch": manifest["training"]["best_epoch"],
        "inference_images_per_s": images_per_s,
    }
    name = "pneumoniamnist_28" if args.size == 28 else "pneumoniamnist_upsampled"
    protocol = (
        f"official train ({int(manifest['metrics']['n_train'])} used) / val / test; EfficientNet-Lite0 "
        f"(packaged ImageNet weights, gray stem folded), input {args.size}px, {args.epochs} epochs max "
        f"({args.freeze_epochs} frozen), batch {args.batch_size}, lr {args.lr} head / {args.backbone_lr} backbone, "
        f"weighted loss, early stopping on {manifest['training']['monitor']} + temperature + {args.threshold} threshold "
        "on val only; metrics on test "
        f"at that threshold (accuracy_argmax: plain argmax); tta={args.tta}"
    )
    write_result(
        name,
        dataset=str(args.data.relative_to(DATA))
        if args.data.is_relative_to(DATA)
        else str(args.data),
        protocol=protocol,
        metrics=metrics,
        anchors=ANCHORS,
        seconds=total.seconds,
        seed=args.seed,
        notes=f"artifact {artifact}; CPU shared with other jobs, so times are pessimistic",
    )


if __name__ == "__main__":
    main()
