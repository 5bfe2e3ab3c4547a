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

from shared.artifacts import read_manifest
from shared.distill import DistillationTask

from .config import MedicalImagingConfig
from .lora import ADAPTER_DIR, load_task
from .lora import MANIFEST_KEY as ADAPTER_KEY

log = logging.getLogger(__name__)

DEFAULT_STUDENT = "random:mobilenetv3_small_100"
"""A small timm network built without pretrained weights (`random:`: nothing is downloaded)."""


def student_config(
    teacher: dict[str, Any], student: str, epochs: int | None = None
) -> MedicalImagingConfig:
    """The teacher's config with the student's backbone, all of it trained from the start.

    A student from scratch has nothing to freeze, so it trains at one learning rate (the head's)
    from the first epoch, for at least twice the teacher's epochs (it starts from nothing);
    all of it trains, so a teacher's adapter is not carried over.
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
    update = {"model": student, "recipe": "finetune", "trainer": trainer, "adapter": None}
    return cfg.model_copy(update=update)


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
    teacher = load_task(teacher_dir, manifest, teacher_cfg, labels)
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


# --- `verticals compress medical_imaging --method distill` -----------------------------------

MODEL_FILES = ("model.safetensors", "config.json", "calibration.json")
"""The files of an imaging artifact that describe its network (replaced by the student's)."""
KEPT_FROM_TEACHER = ("files", "created", "compression")


def compress_apply(job) -> dict[str, Any]:
    """`Compressor.apply`: distils the artifact into `DEFAULT_STUDENT` on `job.data` and puts
    the student's network, calibration and manifest where the teacher's were."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        student_dir = distill(job.source, job.data, Path(tmp))
        manifest = read_manifest(student_dir)
        for old in [*MODEL_FILES, *(p.name for p in job.out.glob("confusion_*.png"))]:
            (job.out / old).unlink(missing_ok=True)
        shutil.rmtree(job.out / ADAPTER_DIR, ignore_errors=True)  # a teacher's adapter
        for new in [*MODEL_FILES, *(p.name for p in student_dir.glob("confusion_*.png"))]:
            shutil.copy2(student_dir / new, job.out / new)
    update = {k: v for k, v in manifest.items() if k not in KEPT_FROM_TEACHER}
    update.setdefault(ADAPTER_KEY, None)  # a teacher's adapter section
    return {
        "student": DEFAULT_STUDENT,
        "teacher": manifest["distilled_from"]["model"],
        "student_test_metrics": {
            k: v for k, v in manifest["metrics"].items() if k.startswith("test_")
        },
        "manifest": update,
    }


def compress_validation(artifact: Path, data: Path):
    """`Compressor.validation`: the validation images of `data` (under the artifact's split),
    written as PNG files for `Runtime.predict`, and the AUC (macro one-vs-rest) of the
    predictions. The files live in a temporary folder for the life of the process."""
    import tempfile

    import numpy as np
    from PIL import Image

    from shared.compression import Validation
    from shared.evaluation import roc_auc

    from .datasets import read_source, resolve_source_splits

    manifest = read_manifest(artifact, vertical="medical_imaging")
    cfg = MedicalImagingConfig.model_validate(manifest["config"])
    labels = list(manifest["label_map"])
    source = read_source(
        data, class_names=cfg.class_names, columns=cfg.columns, label_map=cfg.label_map
    )
    split = resolve_source_splits(source, cfg.val_fraction, cfg.test_fraction, cfg.trainer.seed)
    indices = split.indices()["val"]
    folder = Path(tempfile.mkdtemp(prefix="verticals-val-"))
    inputs = []
    for i in indices:
        if source.paths is not None:
            inputs.append({"path": str(source.paths[i])})
            continue
        image = source.arrays[i]
        path = folder / f"{i}.png"
        Image.fromarray(image.squeeze() if image.ndim == 3 and image.shape[2] == 1 else image).save(
            path
        )
        inputs.append({"path": str(path)})
    truth = np.array([labels.index(source.labels[i]) for i in indices])

    def score(predictions: list[dict[str, Any]]) -> float:
        probs = np.array([[p["probabilities"][n] for n in labels] for p in predictions])
        auc = roc_auc(truth, probs)
        return float(auc) if auc is not None else float((probs.argmax(1) == truth).mean())

    return Validation(
        inputs=inputs,
        score=score,
        metric="val_auc",
        description=f"the val split of {data} ({len(inputs)} images, seed {cfg.trainer.seed})",
    )
