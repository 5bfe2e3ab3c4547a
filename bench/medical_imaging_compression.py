"""Compression of a trained PneumoniaMNIST model: size, CPU latency and test-metric change per method.

Needs an artifact from `bench/medical_imaging_pneumoniamnist.py` (default: the 28 px run). The
int8 calibration uses val images; metrics are on the test split with the artifact's temperature
and threshold. Latencies of all methods are measured interleaved in the same run; the median of
the rounds is reported. Writes `bench/results/compression_medical_imaging.json`.

    python -m bench.medical_imaging_compression --artifact runs/bench_pneumoniamnist/size28/artifact
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from bench.common import DATA, ROOT, Timer, bench_parser, write_result
from medical_imaging import VERTICAL
from medical_imaging.calibration import TEMPERATURE_BOUNDS, choose_threshold
from medical_imaging.compress import COMPRESSORS, float_model, latency_ms, logits_of, model_size_mb
from medical_imaging.datasets import load_images, read_source
from medical_imaging.metrics import heldout_metrics
from shared.calibration import fit_temperature, softmax
from shared.registry import load_runtime
from shared.settings import ServeSettings

DEFAULT_DATA = DATA / "medical_imaging" / "pneumoniamnist" / "pneumoniamnist.npz"


def recalibrate(val_logits: np.ndarray, val_labels: np.ndarray, stored: dict) -> dict:
    """Temperature and threshold refitted on validation logits, by the artifact's own method."""
    temperature = fit_temperature(val_logits, val_labels, bounds=TEMPERATURE_BOUNDS)
    positive = stored["positive_index"]
    threshold = choose_threshold(
        softmax(val_logits, temperature)[:, positive],
        val_labels == positive,
        stored["method"],
        stored["target_sensitivity"],
    )
    return {"temperature": temperature, "threshold": threshold}


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--artifact",
        type=Path,
        default=ROOT / "runs" / "bench_pneumoniamnist" / "size28" / "artifact",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument(
        "--student",
        type=Path,
        default=None,
        help="a distilled artifact of the same data (`verticals compress --method distill`), "
        "measured beside the others as `distill`, at its own temperature and threshold",
    )
    return parser.parse_args()


def compressed_models(task, calibration: torch.Tensor) -> dict:
    """The fp32 baseline and every compressor's model (int8 static calibrated on val images)."""
    models = {"fp32": float_model(task)}
    for name, build in COMPRESSORS.items():
        models[name] = build(task, calibration) if name == "int8_static" else build(task)
    return models


def quality_of(models: dict, cals: dict, test, labels, val, val_labels) -> tuple[dict, dict]:
    """Test metrics of each model at its artifact's temperature and threshold (`cals[name]`,
    the teacher's for a compressed copy of it), and at its own refitted on val."""
    quality, recalibrated = {}, {}
    for name, m in models.items():
        cal = cals.get(name, cals["fp32"])
        test_logits = logits_of(m, test).numpy()
        quality[name] = heldout_metrics(
            test_logits,
            labels,
            temperature=cal["temperature"],
            threshold=cal["threshold"],
            positive_index=cal["positive_index"],
        )
        # a compressed model gets its own temperature and threshold, fitted on val only
        own = recalibrate(logits_of(m, val).numpy(), val_labels, cal)
        recalibrated[name] = heldout_metrics(
            test_logits, labels, positive_index=cal["positive_index"], **own
        )
    return quality, recalibrated


def latencies(models: dict, test: torch.Tensor, rounds: int) -> tuple[dict, dict]:
    """Median single-image and batch-of-32 latencies (ms), all methods interleaved per round."""
    one, batch = test[:1].float(), test[:32].float()
    single = {name: [] for name in models}
    batched = {name: [] for name in models}
    for _ in range(rounds):  # interleaved, so load changes hit every method alike
        for name, m in models.items():
            single[name].append(latency_ms(m, one, repeats=10))
            batched[name].append(latency_ms(m, batch, repeats=3))
    median = statistics.median
    return {k: median(v) for k, v in single.items()}, {k: median(v) for k, v in batched.items()}


def summary_row(name: str, m, single, batched, quality, recalibrated) -> dict[str, float]:
    """One method's size, latency, speedup and metric changes against fp32."""
    return {
        "size_mb": model_size_mb(m),
        "p50_ms": single[name],
        "p50_ms_batch32": batched[name],
        "speedup": single["fp32"] / single[name],
        "speedup_batch32": batched["fp32"] / batched[name],
        "auc": quality[name]["auc"],
        "accuracy": quality[name]["accuracy"],
        "metric_delta": quality[name]["auc"] - quality["fp32"]["auc"],
        "metric_retained": quality[name]["auc"] / quality["fp32"]["auc"],
        "accuracy_delta": quality[name]["accuracy"] - quality["fp32"]["accuracy"],
        "accuracy_recalibrated": recalibrated[name]["accuracy"],
        "accuracy_delta_recalibrated": recalibrated[name]["accuracy"]
        - recalibrated["fp32"]["accuracy"],
        "ece_recalibrated": recalibrated[name]["ece"],
    }


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    with Timer() as total:
        runtime = load_runtime(VERTICAL, args.artifact, ServeSettings(device="cpu"))
        size, chans = runtime.cfg.image_size, runtime.cfg.in_chans
        cfg = runtime.cfg  # the artifact's names for the file's classes
        source = read_source(
            args.data, class_names=cfg.class_names, columns=cfg.columns, label_map=cfg.label_map
        )
        split = np.asarray(source.splits)
        test_idx, val_idx = np.flatnonzero(split == "test"), np.flatnonzero(split == "val")
        test = load_images(source, test_idx, size, chans)
        calibration = load_images(source, val_idx[: args.calibration_images], size, chans)
        labels = np.asarray([runtime.labels.index(source.labels[i]) for i in test_idx])
        models = compressed_models(runtime.task, calibration)
        cals = {"fp32": runtime.calibration}
        if args.student is not None:
            student = load_runtime(VERTICAL, args.student, ServeSettings(device="cpu"))
            if (student.cfg.image_size, student.labels) != (size, runtime.labels):
                raise SystemExit(f"{args.student}: not a student of {args.artifact}'s task")
            models["distill"] = float_model(student.task)
            cals["distill"] = student.calibration
        val_labels = np.asarray([runtime.labels.index(source.labels[i]) for i in val_idx])
        val = load_images(source, val_idx, size, chans)
        quality = quality_of(models, cals, test, labels, val, val_labels)
        single, batched = latencies(models, test, args.rounds)
    rows = {name: summary_row(name, m, single, batched, *quality) for name, m in models.items()}
    metrics = {name: row for name, row in rows.items() if name != "fp32"}
    write_result(
        "compression_medical_imaging",
        dataset="medical_imaging/pneumoniamnist (test split)",
        protocol=(
            f"artifact {args.artifact} ({size}px, {runtime.manifest['model_name']}); "
            + (
                f"distill = the student artifact {args.student} at its own calibration; "
                if args.student
                else ""
            )
            + "int8 calibrated on "
            f"{len(calibration)} val images; metric_delta = test AUC change vs fp32, metric_retained = test AUC / fp32 test AUC; accuracy(_delta) at the "
            f"artifact's temperature/threshold, *_recalibrated with each model's own temperature and "
            f"threshold refitted on val (how a compressed model is deployed); p50_ms = median single-image latency on CPU, torch threads "
            f"{torch.get_num_threads()}, {args.rounds} interleaved rounds"
        ),
        metrics=metrics,
        baselines={"fp32": rows["fp32"]},
        seconds=total.seconds,
        seed=0,
        notes="size_mb is the serialized state dict (packed int8 weights for int8_static); CPU shared with "
        "other jobs, so latencies are noisy; compare the speedup ratios",
    )


if __name__ == "__main__":
    main()
