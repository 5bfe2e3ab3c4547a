"""A loaded artifact: decode -> calibrated prediction with the stored threshold, and Grad-CAM."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medical_imaging.config import MedicalImagingConfig
from medical_imaging.explain import gradcam, overlay_png
from medical_imaging.io import decode_image, read_image_file
from medical_imaging.labels import decision_rule
from medical_imaging.lora import load_task
from medical_imaging.transforms import to_model_input, tta_views
from shared.artifacts import load_json, read_manifest
from shared.calibration import softmax
from shared.devices import resolve_device
from shared.engine import InferenceEngine
from shared.errors import InputError
from shared.settings import ServeSettings

log = logging.getLogger(__name__)


class MedicalImagingRuntime:
    """Serves one artifact. Engine items are (C, S, S) pixel tensors; decoding happens per request.

    Args:
        artifact_dir: Folder written by `verticals train medical_imaging`.
        settings: Built by the core (`shared.registry.build_settings`): the device, the engine's
            batching, and where uploads are kept (`keep_uploads`, `data_dir`).
    """

    def __init__(self, artifact_dir: str | Path, settings: ServeSettings) -> None:
        artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(artifact_dir, vertical="medical_imaging")
        self.settings = settings
        self.cfg = MedicalImagingConfig.model_validate(self.manifest["config"])
        self.labels: list[str] = list(self.manifest["label_map"])
        self.calibration: dict[str, Any] = load_json(artifact_dir / "calibration.json")
        self.rule = self.manifest.get("decision_rule") or decision_rule(
            self.labels, self.calibration
        )
        self.device = resolve_device(settings.device)
        self.task = load_task(artifact_dir, self.manifest, self.cfg, self.labels)
        self.task.to(self.device).eval()
        blank = torch.zeros(self.cfg.in_chans, self.cfg.image_size, self.cfg.image_size)
        self.engine = InferenceEngine.from_settings(self._batch, settings, warmup_items=[blank])
        self._explain_lock = threading.Lock()  # Grad-CAM hooks the shared model: one at a time

    def prepare(self, data: bytes, name: str = "upload") -> torch.Tensor:
        """Image bytes -> model input; raises InputError (4xx) for anything that is not a usable image."""
        return to_model_input(decode_image(data, name), self.cfg.image_size, self.cfg.in_chans)

    async def predict_upload(self, data: bytes, name: str) -> dict[str, Any]:
        """The service's `/predict`: an uploaded file -> a calibrated prediction (via the engine)."""
        pixels = await self._accept_upload(data, name)
        return await self.engine.submit(pixels)

    async def explain_upload(self, data: bytes, name: str) -> tuple[bytes, dict[str, Any]]:
        """The service's `/explain`: an uploaded file -> Grad-CAM overlay PNG and the prediction."""
        pixels = await self._accept_upload(data, name)
        result = await self.engine.submit(pixels)
        return await asyncio.to_thread(self.explain, pixels, result)

    async def _accept_upload(self, data: bytes, name: str) -> torch.Tensor:
        """Decodes an upload (4xx for bad ones) and keeps it only when the settings ask to."""
        if not data:
            raise InputError(f"{name}: empty upload (0 bytes); send a PNG, JPEG or DICOM file", 400)
        return await asyncio.to_thread(self._prepare_and_keep, data, name)

    def _prepare_and_keep(self, data: bytes, name: str) -> torch.Tensor:
        """Off the event loop: decoding and the optional copy of the upload on disk."""
        pixels = self.prepare(data, name)
        if self.settings.keep_uploads and self.settings.data_dir is not None:
            folder = Path(self.settings.data_dir) / "uploads"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{uuid.uuid4().hex}{Path(name).suffix.lower()}").write_bytes(data)
        return pixels

    def _batch(self, items: list[torch.Tensor]) -> list[dict[str, Any]]:
        pixels = torch.stack(items).to(self.device)
        views = tta_views(pixels, self.cfg.augment.hflip) if self.cfg.tta else [pixels]
        logits = torch.stack([self.task.logits(v).float() for v in views]).mean(0).cpu().numpy()
        return [self._decide(p) for p in softmax(logits, self.calibration["temperature"])]

    def _decide(self, probs: np.ndarray) -> dict[str, Any]:
        """Label by the stored threshold (binary) or argmax; low confidence near the decision."""
        margin = float(self.calibration["low_confidence_margin"])
        positive, threshold = self.calibration["positive_index"], self.calibration["threshold"]
        if positive is None:
            threshold = None  # multi-class: argmax, whatever calibration.json holds
        if threshold is not None:
            score = float(probs[positive])
            index = positive if score >= threshold else 1 - positive
            low = abs(score - threshold) < margin
        else:
            index = int(probs.argmax())
            ranked = np.sort(probs)
            low = float(ranked[-1] - ranked[-2]) < 2 * margin
        return {
            "label": self.labels[index],
            "probabilities": {name: float(p) for name, p in zip(self.labels, probs, strict=True)},
            "threshold": threshold,
            "decision_rule": "threshold" if threshold is not None else "argmax",
            "calibrated": True,
            "low_confidence": bool(low),
        }

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with `path` (and optional `heatmap_path`, where a Grad-CAM overlay PNG is written)."""
        pixels = []
        for i, row in enumerate(rows):
            if not row.get("path"):
                raise InputError(f"row {i + 1}: missing 'path' to an image", 422)
            image = read_image_file(row["path"])
            pixels.append(to_model_input(image, self.cfg.image_size, self.cfg.in_chans))
        results = self.engine.run(pixels)
        for row, tensor, result in zip(rows, pixels, results, strict=True):
            target = row.get("heatmap_path")
            if isinstance(target, str) and target.strip():
                png, _ = self.explain(tensor, result)
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                Path(target).write_bytes(png)
                result["heatmap_path"] = target
        return results

    def explain(
        self, pixels: torch.Tensor, result: dict[str, Any] | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        """Heatmap overlay PNG (label, probability, colour bar) for the predicted label, and the
        prediction itself."""
        if result is None:
            with torch.inference_mode():
                result = self._batch([pixels])[0]
        with self._explain_lock:
            heatmap = gradcam(
                self.task, pixels, self.labels.index(result["label"]), self.cfg.image_size
            )
        probability = result["probabilities"][result["label"]]
        return overlay_png(pixels, heatmap, label=result["label"], probability=probability), result

    def info(self) -> dict[str, Any]:
        """`/v1/info`: the labels, how one is chosen (`decision_rule`), the positive class, the
        class each class-dependent metric is about (`metric_classes`), and the calibration."""
        return {
            "model": self.manifest["model_name"],
            "labels": self.labels,
            "image_size": self.cfg.image_size,
            "threshold": self.calibration["threshold"],
            "temperature": self.calibration["temperature"],
            "positive_label": self.calibration["positive_label"],
            "decision_rule": self.rule,
            "metric_classes": self.manifest.get("metric_classes", {}),
            "calibration": self.manifest.get("calibration"),
            "metrics": self.manifest["metrics"],
        }
