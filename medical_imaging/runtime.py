"""A loaded artifact: decode -> calibrated prediction with the stored threshold, and Grad-CAM;
with a tenants folder, its tenants' classifiers on the same base (`medical_imaging.tenants`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medical_imaging.config import MedicalImagingConfig, MedicalImagingSettings
from medical_imaging.explain import gradcam, overlay_png
from medical_imaging.io import decode_image, read_image_file
from medical_imaging.lora import MANIFEST_KEY, adapter_task, load_task
from medical_imaging.tenants import Classifier, TenantPool, classifier, on_body, peft_body
from medical_imaging.transforms import to_model_input, tta_views
from shared.artifacts import read_manifest
from shared.calibration import softmax
from shared.devices import resolve_device
from shared.engine import InferenceEngine
from shared.errors import ArtifactError, InputError
from shared.tenants import no_tenants

log = logging.getLogger(__name__)

Item = torch.Tensor | tuple[torch.Tensor, str | None]
"""An engine item: (C, S, S) pixels for the served classifier, or (pixels, tenant)."""


class MedicalImagingRuntime:
    """Serves one artifact (and, with `tenants_dir`, its tenants' adapters on its base).

    Engine items are pixels or (pixels, tenant) (`Item`); decoding happens per request.

    Args:
        artifact_dir: Folder written by `verticals train medical_imaging`.
        settings: Built by the core (`shared.registry.build_settings`): the device, the engine's
            batching, where uploads are kept (`keep_uploads`, `data_dir`), and the tenants
            (`tenants_dir`, `tenant_cache_size`; see `medical_imaging.tenants`).

    Raises:
        ArtifactError: tenants are asked for, but the artifact is not an adapter artifact.
    """

    def __init__(self, artifact_dir: str | Path, settings: MedicalImagingSettings) -> None:
        artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(artifact_dir, vertical="medical_imaging")
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.main, self.tenants = self._load(artifact_dir, settings)
        self.cfg, self.labels = self.main.cfg, self.main.labels
        self.calibration, self.rule, self.task = (
            self.main.calibration,
            self.main.rule,
            self.main.task,
        )
        blank = torch.zeros(self.cfg.in_chans, self.cfg.image_size, self.cfg.image_size)
        self.engine = InferenceEngine.from_settings(
            self._batch, settings, warmup_items=[(blank, None)]
        )
        self._explain_lock = threading.Lock()  # Grad-CAM hooks the shared model: one at a time

    def _load(
        self, artifact: Path, settings: MedicalImagingSettings
    ) -> tuple[Classifier, TenantPool | None]:
        """The served classifier, and the tenants' pool when `settings.tenants_dir` is set."""
        cfg = MedicalImagingConfig.model_validate(self.manifest["config"])
        labels = list(self.manifest["label_map"])
        if settings.tenants_dir is None:  # a plain classifier (an adapter folded in)
            task = load_task(artifact, self.manifest, cfg, labels).to(self.device).eval()
            return classifier(artifact, self.manifest, task), None
        section = self.manifest.get(MANIFEST_KEY)
        if not section:
            raise ArtifactError(
                f"VERTICALS_TENANTS_DIR is set, so {artifact} must be an adapter artifact "
                "(trained with adapter.method=lora), whose base model serves every tenant; "
                "it is a full model"
            )
        adapted = adapter_task(artifact, cfg, labels, section).to(self.device)
        model = adapted.backbone  # the PeftModel: the base once, the served adapter pinned
        body = on_body(peft_body(model), adapted.head, len(labels), cfg.in_chans)
        main = classifier(artifact, self.manifest, body, adapter=model.active_adapter)
        pool = TenantPool(model, main, section, settings.tenants_dir, settings.tenant_cache_size)
        return main, pool

    def resolve(self, tenant: str | None) -> Classifier:
        """The classifier of `tenant` (loaded if it is not), or the served one for None.

        Raises:
            InputError: 404 (no such tenant, or no tenants here), 422 (bad name), 409 (its
                adapter does not fit this base).
        """
        if tenant is None:
            return self.main
        if self.tenants is None:
            raise no_tenants(tenant)
        return self.tenants.resolve(tenant)

    def prepare(
        self, data: bytes, name: str = "upload", served: Classifier | None = None
    ) -> torch.Tensor:
        """Image bytes -> model input of `served` (the served artifact for None); raises
        InputError (4xx) for anything that is not a usable image."""
        cfg = (served or self.main).cfg
        return to_model_input(decode_image(data, name), cfg.image_size, cfg.in_chans)

    async def predict_upload(
        self, data: bytes, name: str, tenant: str | None = None
    ) -> dict[str, Any]:
        """The service's `/predict`: an uploaded file -> a calibrated prediction (via the engine)
        by `tenant`'s classifier (the served one for None)."""
        pixels = await self._accept_upload(data, name, tenant)
        return await self.engine.submit((pixels, tenant))

    async def explain_upload(
        self, data: bytes, name: str, tenant: str | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        """The service's `/explain`: an uploaded file -> Grad-CAM overlay PNG and the prediction."""
        pixels = await self._accept_upload(data, name, tenant)
        result = await self.engine.submit((pixels, tenant))
        return await asyncio.to_thread(self.explain, pixels, result, tenant)

    async def _accept_upload(self, data: bytes, name: str, tenant: str | None) -> torch.Tensor:
        """Resolves the tenant (404/409/422 before any decoding), decodes the upload (4xx for bad
        ones) and keeps it only when the settings ask to."""
        served = self.main if tenant is None else await asyncio.to_thread(self.resolve, tenant)
        if not data:
            raise InputError(f"{name}: empty upload (0 bytes); send a PNG, JPEG or DICOM file", 400)
        return await asyncio.to_thread(self._prepare_and_keep, data, name, served)

    def _prepare_and_keep(self, data: bytes, name: str, served: Classifier) -> torch.Tensor:
        """Off the event loop: decoding and the optional copy of the upload on disk."""
        pixels = self.prepare(data, name, served)
        if self.settings.keep_uploads and self.settings.data_dir is not None:
            folder = Path(self.settings.data_dir) / "uploads"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{uuid.uuid4().hex}{Path(name).suffix.lower()}").write_bytes(data)
        return pixels

    def _batch(self, items: list[Item]) -> list[dict[str, Any]]:
        """The engine's batch function: each tenant's images in one forward with its adapter."""
        items = [item if isinstance(item, tuple) else (item, None) for item in items]
        names = [tenant for _, tenant in items]
        if self.tenants is None:
            named = sorted({n for n in names if n is not None})
            if named:
                raise no_tenants(named[0])
            return self._classify(self.main, [pixels for pixels, _ in items])

        def run(served: Classifier, rows: list[int]) -> list[dict[str, Any]]:
            return self._classify(served, [items[i][0] for i in rows])

        return self.tenants.logits(names, run)

    @torch.inference_mode()
    def _classify(self, served: Classifier, images: list[torch.Tensor]) -> list[dict[str, Any]]:
        """Calibrated predictions of `served` for same-sized images (test-time views averaged)."""
        pixels = torch.stack(images).to(self.device)
        cfg = served.cfg
        views = tta_views(pixels, cfg.augment.hflip) if cfg.tta else [pixels]
        logits = torch.stack([served.task.logits(v).float() for v in views]).mean(0).cpu().numpy()
        return [served.decide(p) for p in softmax(logits, served.calibration["temperature"])]

    def _decide(self, probs: np.ndarray) -> dict[str, Any]:
        """The served classifier's decision for class probabilities `probs`."""
        return self.main.decide(probs)

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with `path` (and optional `heatmap_path`, where a Grad-CAM overlay PNG is written)."""
        pixels = []
        for i, row in enumerate(rows):
            if not row.get("path"):
                raise InputError(f"row {i + 1}: missing 'path' to an image", 422)
            image = read_image_file(row["path"])
            pixels.append(to_model_input(image, self.cfg.image_size, self.cfg.in_chans))
        results = self.engine.run([(tensor, None) for tensor in pixels])
        for row, tensor, result in zip(rows, pixels, results, strict=True):
            target = row.get("heatmap_path")
            if isinstance(target, str) and target.strip():
                png, _ = self.explain(tensor, result)
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                Path(target).write_bytes(png)
                result["heatmap_path"] = target
        return results

    def explain(
        self,
        pixels: torch.Tensor,
        result: dict[str, Any] | None = None,
        tenant: str | None = None,
    ) -> tuple[bytes, dict[str, Any]]:
        """Heatmap overlay PNG (label, probability, colour bar) for the predicted label by
        `tenant`'s classifier (the served one for None), and the prediction itself."""
        if result is None:
            result = self._batch([(pixels, tenant)])[0]
        with self._explain_lock, self._adapter_of(tenant) as served:
            heatmap = gradcam(
                served.task, pixels, served.labels.index(result["label"]), served.cfg.image_size
            )
        probability = result["probabilities"][result["label"]]
        return overlay_png(pixels, heatmap, label=result["label"], probability=probability), result

    @contextmanager
    def _adapter_of(self, tenant: str | None):
        """`tenant`'s classifier with its adapter active (and the tenants' lock held) inside."""
        if self.tenants is None:
            yield self.resolve(tenant)
            return
        with self.tenants.cache.lock:
            served = self.tenants.resolve(tenant)
            self.tenants.activate(served)
            yield served

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
            "tenants": None if self.tenants is None else self.tenants.cache.keys(),
        }
