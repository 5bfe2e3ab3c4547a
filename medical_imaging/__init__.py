"""medical_imaging: a transfer-learned, calibrated and explainable imaging classifier.

Fine-tunes a timm backbone (EfficientNet-Lite0 with its packaged ImageNet weights by default) on
PNG, JPEG or DICOM images, fits temperature scaling and an operating threshold on validation
data, and serves calibrated predictions with Grad-CAM overlays. Heavy imports stay in submodules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medical_imaging.config import MedicalImagingConfig, MedicalImagingSettings
from medical_imaging.schemas import MANIFEST_SCHEMA, PREDICT_SCHEMA
from shared.registry import Compressor, Vertical

if TYPE_CHECKING:
    from shared.reports import EvaluationReport

SMOKE_OVERRIDES: dict[str, Any] = {
    "model": "random:test_efficientnet",
    "recipe": "finetune",  # one fit: `auto` would also score the linear probe
    "image_size": 32,
    "trainer": {
        "epochs": 1,
        "max_steps": 2,
        "batch_size": 8,
        "freeze_backbone_epochs": 0,
        "progress": False,
    },
}


def train(cfg: MedicalImagingConfig, data_path: Path, out_dir: Path) -> Path:
    from medical_imaging.training import train as _train

    return _train(cfg, data_path, out_dir)


def load(artifact_dir: Path, settings: MedicalImagingSettings):
    from medical_imaging.runtime import MedicalImagingRuntime

    return MedicalImagingRuntime(artifact_dir, settings)


def build_router():
    from medical_imaging.service import build_router as _build

    return _build()


def demo(workdir: Path) -> dict[str, Any]:
    from medical_imaging.demo import demo as _demo

    return _demo(workdir)


def example_data(folder: Path) -> Path:
    """A tiny manifest of generated scans (some DICOM) for smoke tests."""
    from medical_imaging.synthetic import write_dataset

    return write_dataset(
        folder, n_patients=16, images_per_patient=2, size=40, positive_rate=0.5, dicom_every=4
    )


def example_inputs(data_path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    paths = pd.read_csv(data_path)["path"].head(3)
    rows = [{"path": str(Path(data_path).parent / p)} for p in paths]
    rows[0]["heatmap_path"] = str(Path(data_path).parent / "heatmaps" / "example.png")
    return rows


def smoke_request(client, data_path: Path):
    image = Path(data_path).parent / "images" / "p0000_0.png"
    return client.post(
        "/v1/medical_imaging/predict", files={"file": (image.name, image.read_bytes(), "image/png")}
    )


def evaluate(runtime, data_path: Path) -> EvaluationReport:
    """The `EvaluationReport` of a loaded artifact on labelled images (its test split if any)."""
    from medical_imaging.evaluate import evaluate as _evaluate

    return _evaluate(runtime, data_path)


def _compress_apply(job) -> dict[str, Any]:
    if job.method == "lora-merge":
        from medical_imaging.lora import compress_merge

        return compress_merge(job)
    from medical_imaging.distill import compress_apply

    return compress_apply(job)


def _compress_validation(artifact: Path, data: Path):
    from medical_imaging.distill import compress_validation

    return compress_validation(artifact, data)


VERTICAL = Vertical(
    name="medical_imaging",
    summary="Calibrated, explainable image classifier (X-ray, ultrasound, dermoscopy) with a sensitivity threshold.",
    config_cls=MedicalImagingConfig,
    settings_cls=MedicalImagingSettings,
    train=train,
    load=load,
    build_router=build_router,
    demo=demo,
    example_data=example_data,
    example_inputs=example_inputs,
    smoke_overrides=SMOKE_OVERRIDES,
    smoke_request=smoke_request,
    evaluate=evaluate,
    schemas={"manifest": MANIFEST_SCHEMA, "predict": PREDICT_SCHEMA},
    compress=Compressor(
        methods=("distill", "lora-merge"), apply=_compress_apply, validation=_compress_validation
    ),
)
