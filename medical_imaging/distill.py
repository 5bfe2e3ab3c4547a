"""Distilling a trained imaging classifier into a smaller timm network.

The teacher is an artifact; the student a timm architecture (default `mobilenetv3_small_100`,
about a quarter of EfficientNet-Lite0's compute), trained from scratch (no pretrained weights
ship offline for it) with `shared.distill.DistillationTask`: KL to the teacher's softened
logits plus the student's own class-weighted cross-entropy. Everything else is `training.train`
with the teacher's config: the same data, the same splits (same seed and fractions), the same
calibration on validation and the same held-out test metrics, so the student's artifact is an
ordinary one (`serve`, `predict`, `evaluate`, heatmaps) with `distilled_from` in its manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shared.artifacts import load_weights, read_manifest
from shared.distill import DistillationTask

from .config import MedicalImagingConfig
from .model import build_task

log = logging.getLogger(__name__)

DEFAULT_STUDENT = "random:mobilenetv3_small_100"
"""A small timm network built without pretrained weights (`random:`: nothing is downloaded)."""


def student_config(
    teacher: dict[str, Any], student: str, epochs: int | None = None
) -> MedicalImagingConfig:
    """The teacher's config with the student's backbone, all of it trained from the start.

    A student from scratch has nothing to freeze, so it trains at one learning rate (the head's)
    from the first epoch, for at least twice the teacher's epochs (it starts from nothing).
    """
    cfg = MedicalImagingConfig.model_validate(teacher["config"])
    trainer = cfg.trainer.model_copy(
        update={
            "freeze_backbone_epochs": 0,
            "backbone_lr": None,
            "epochs": epochs or 2 * cfg.trainer.epochs,
            "resume": False,
        }
    )
    return cfg.model_copy(update={"model": student, "recipe": "finetune", "trainer": trainer})


def distill(
    teacher_dir: str | Path,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    student: str = DEFAULT_STUDENT,
    temperature: float = 2.0,
    alpha: float = 0.5,
    epochs: int | None = None,
) -> Path:
    """Trains `student` on `data_path` against the teacher artifact; returns the new artifact."""
    from .training import train

    teacher_dir = Path(teacher_dir)
    manifest = read_manifest(teacher_dir, vertical="medical_imaging")
    teacher_cfg = MedicalImagingConfig.model_validate(manifest["config"])
    labels = list(manifest["label_map"])
    teacher = build_task(teacher_cfg.model, len(labels), teacher_cfg.in_chans, pretrained=False)
    teacher.load_state_dict(load_weights(teacher_dir / "model.safetensors"))
    cfg = student_config(manifest, student, epochs)
    record = {
        "artifact": str(teacher_dir),
        "model": teacher_cfg.model,
        "temperature": temperature,
        "alpha": alpha,
        "teacher_metrics": {
            k: v for k, v in manifest.get("metrics", {}).items() if k.startswith("test_")
        },
    }

    def fit_model(cfg, build, finetune, pixels, labels_, n_classes, run_dir):
        if n_classes != len(labels):
            raise ValueError(f"the data have {n_classes} classes, the teacher {len(labels)}")
        student_task = build()
        task = DistillationTask(student_task, teacher, temperature=temperature, alpha=alpha)
        result = finetune(task, pixels, labels_, run_dir)
        return (student_task.eval(), result), {"distilled_from": record}

    log.info(
        "distilling %s into %s (T=%s, alpha=%s)", teacher_cfg.model, student, temperature, alpha
    )
    return train(cfg, data_path, out_dir, fit_model=fit_model)
