"""HTTP routes: multipart upload -> calibrated prediction (`/predict`) or Grad-CAM PNG (`/explain`).

Uploads are decoded in memory and dropped; they are written to disk only when the deployment
sets `VERTICALS_KEEP_UPLOADS=true` and `VERTICALS_DATA_DIR`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from shared.errors import InputError
from shared.serving import ServeSettings, get_runtime, get_settings

log = logging.getLogger(__name__)


class PredictResponse(BaseModel):
    """A calibrated prediction at the artifact's operating threshold."""

    label: str
    probabilities: dict[str, float]
    threshold: float | None
    calibrated: bool
    low_confidence: bool


async def _read_upload(file: UploadFile, runtime, settings: ServeSettings):
    name = Path(file.filename or "upload").name
    data = await file.read()
    await file.close()
    if not data:
        raise InputError(f"{name}: empty upload (0 bytes); send a PNG, JPEG or DICOM file", 400)
    pixels = await asyncio.to_thread(runtime.prepare, data, name)
    if settings.keep_uploads and settings.data_dir is not None:
        folder = Path(settings.data_dir) / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{uuid.uuid4().hex}{Path(name).suffix.lower()}").write_bytes(data)
    return pixels


def build_router() -> APIRouter:
    """The `/v1/medical_imaging/` routes."""
    router = APIRouter()

    @router.post("/predict", response_model=PredictResponse)
    async def predict(
        file: UploadFile = File(..., description="PNG, JPEG or DICOM image"),
        runtime=Depends(get_runtime),
        settings: ServeSettings = Depends(get_settings),
    ):
        """Label, calibrated probabilities, the operating threshold and a low-confidence flag."""
        pixels = await _read_upload(file, runtime, settings)
        return await runtime.engine.submit(pixels)

    @router.post(
        "/explain",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "Grad-CAM overlay"}},
    )
    async def explain(
        file: UploadFile = File(..., description="PNG, JPEG or DICOM image"),
        runtime=Depends(get_runtime),
        settings: ServeSettings = Depends(get_settings),
    ):
        """Grad-CAM overlay PNG of the predicted label; the prediction is in `X-Prediction-*` headers."""
        pixels = await _read_upload(file, runtime, settings)
        result = await runtime.engine.submit(pixels)
        png, result = await asyncio.to_thread(runtime.explain, pixels, result)
        headers = {
            "X-Prediction-Label": quote(result["label"]),
            "X-Prediction-Low-Confidence": str(result["low_confidence"]).lower(),
        }
        return Response(content=png, media_type="image/png", headers=headers)

    return router
