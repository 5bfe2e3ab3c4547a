"""`verticals demo medical_imaging`: synthetic scans -> fine-tuned, calibrated, explained classifier."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medical_imaging.config import MedicalImagingConfig
from medical_imaging.synthetic import write_dataset
from shared.artifacts import read_manifest
from shared.config import load_config
from shared.data import load_table
from shared.registry import load_runtime

log = logging.getLogger(__name__)

DEMO_OVERRIDES: dict[str, Any] = {
    # the fine-tune alone: `auto` would cross-validate both recipes on the ~50 validation scans
    # (six fits), several minutes of a demo that should take one
    "recipe": "finetune",
    # 64 px: at 48 px the lesions are a few pixels wide and runs differed a lot from one another
    "image_size": 64,
    # ~17 positive validation scans: a 95% target would be set by the single faintest lesion and
    # swing the specificity from run to run; 90% lets one of them fall below the threshold
    "calibration": {"threshold_method": "sensitivity", "target_sensitivity": 0.9},
    "trainer": {
        "epochs": 6,
        "freeze_backbone_epochs": 1,
        "batch_size": 32,
        "lr": 2e-3,
        "backbone_lr": 5e-4,
        "warmup_ratio": 0.05,
        "early_stopping_patience": None,
        "progress": False,
    },
}


def demo(workdir: str | Path) -> dict[str, Any]:
    """Generates 330 scans of 110 patients, fine-tunes EfficientNet-Lite0 on CPU, reports test metrics.

    Returns:
        Test AUC, sensitivity and specificity at the validation-chosen threshold, ECE before and
        after temperature scaling, and the paths of a few Grad-CAM overlays.
    """
    from medical_imaging import VERTICAL
    from medical_imaging.training import train

    workdir = Path(workdir)
    manifest = write_dataset(
        workdir / "data", n_patients=110, images_per_patient=3, size=96, dicom_every=10, seed=0
    )
    cfg = load_config(MedicalImagingConfig, overrides=DEMO_OVERRIDES)
    artifact = train(cfg, manifest, workdir / "model")
    written = read_manifest(artifact)
    metrics, positive = written["metrics"], written["positive_label"]  # "lesion"
    runtime = load_runtime(VERTICAL, artifact)  # settings from the environment, as a service
    overlays = _write_overlays(runtime, manifest, cfg, workdir / "explanations")
    return {
        "data": str(manifest),
        "artifact": str(artifact),
        "images": {"train": int(metrics["n_train"]), "test": int(metrics["test_n"])},
        "test_auc": round(metrics["test_auc"], 4),
        "threshold": round(read_calibration(artifact)["threshold"], 4),
        "positive_label": positive,
        f"test_sensitivity_{positive}": round(metrics[f"test_sensitivity_{positive}"], 4),
        f"test_specificity_{positive}": round(metrics[f"test_specificity_{positive}"], 4),
        "test_accuracy": round(metrics["test_accuracy"], 4),
        "test_ece_before_calibration": round(metrics["test_ece_uncalibrated"], 4),
        "test_ece_after_calibration": round(metrics["test_ece"], 4),
        "temperature": round(read_calibration(artifact)["temperature"], 3),
        "train_seconds": metrics["train_seconds"],
        "explanations": overlays,
    }


def read_calibration(artifact: Path) -> dict[str, Any]:
    from shared.artifacts import load_json

    return load_json(Path(artifact) / "calibration.json")


def _write_overlays(
    runtime, manifest: Path, cfg: MedicalImagingConfig, folder: Path, count: int = 4
) -> list[str]:
    """Grad-CAM overlays for a few lesion and normal images of the test split (the same split training used)."""
    from medical_imaging.datasets import read_source, split_source

    test = split_source(
        read_source(manifest), cfg.val_fraction, cfg.test_fraction, cfg.trainer.seed
    )["test"]
    table = load_table(manifest, _schema()).iloc[test]
    picks = [
        *table[table["label"] == "lesion"].head(count // 2).itertuples(),
        *table[table["label"] == "normal"].head(count - count // 2).itertuples(),
    ]
    rows = [
        {
            "path": str(manifest.parent / row.path),
            "heatmap_path": str(folder / f"{Path(row.path).stem}_{row.label}.png"),
        }
        for row in picks
    ]
    results = runtime.predict(rows)
    return [
        f"{r['heatmap_path']} (true {row.label}, predicted {r['label']})"
        for r, row in zip(results, picks, strict=True)
    ]


def _schema():
    from medical_imaging.schemas import MANIFEST_SCHEMA

    return MANIFEST_SCHEMA
