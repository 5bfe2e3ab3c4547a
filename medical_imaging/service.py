"""HTTP routes: multipart upload -> calibrated prediction (`/predict`) or Grad-CAM PNG (`/explain`),
by the served classifier or, with `X-Tenant`, a tenant's (`/tenants` lists them).

Uploads are decoded in memory and dropped; they are written to disk only when the deployment
sets `VERTICALS_KEEP_UPLOADS=true` and `VERTICALS_DATA_DIR`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Header, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from shared.serving import (
    UPLOAD_RESPONSES,
    add_tenant_routes,
    error_responses,
    get_runtime,
    upload_slot,
)

log = logging.getLogger(__name__)


class PredictResponse(BaseModel):
    """A calibrated prediction: at the artifact's operating threshold (binary) or by argmax."""

    label: str
    probabilities: dict[str, float]
    threshold: float | None = Field(
        description="The threshold on the positive class's probability; null when the label is "
        "the argmax (multi-class)"
    )
    decision_rule: Literal["threshold", "argmax"] = Field(
        description="How `label` was chosen: the positive class's probability against "
        "`threshold`, or the most probable class"
    )
    calibrated: bool
    low_confidence: bool


async def _read(file: UploadFile) -> tuple[bytes, str]:
    """The upload's bytes and its file name (without any folder the client sent)."""
    data = await file.read()
    await file.close()
    return data, Path(file.filename or "upload").name


TENANT_HEADER = Header(
    None,
    description="the tenant whose classifier answers (VERTICALS_TENANTS_DIR); none: the served one",
)
ROUTE_ERRORS = {**UPLOAD_RESPONSES, **error_responses(404, 409)}
"""An upload route's errors, and the 404/409 of a tenant that is missing or does not fit."""


def build_router() -> APIRouter:
    """The `/v1/medical_imaging/` routes."""
    router = APIRouter()

    @router.post(
        "/predict",
        response_model=PredictResponse,
        dependencies=[Depends(upload_slot)],
        responses=ROUTE_ERRORS,
    )
    async def predict(
        file: UploadFile = File(..., description="PNG, JPEG or DICOM image"),
        runtime=Depends(get_runtime),
        x_tenant: str | None = TENANT_HEADER,
    ):
        """Label, calibrated probabilities, the operating threshold and a low-confidence flag.

        With `X-Tenant`, the tenant's classifier (its adapter on the shared base, its head and
        calibration) answers: 404 for a tenant that is not there, 409 for one that does not fit.
        """
        return await runtime.predict_upload(*await _read(file), x_tenant)

    @router.post(
        "/explain",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}}, "description": "Grad-CAM overlay"},
            **ROUTE_ERRORS,
        },
        dependencies=[Depends(upload_slot)],
    )
    async def explain(
        file: UploadFile = File(..., description="PNG, JPEG or DICOM image"),
        runtime=Depends(get_runtime),
        x_tenant: str | None = TENANT_HEADER,
    ):
        """Grad-CAM overlay PNG of the predicted label (the tenant's with `X-Tenant`); the
        prediction is in `X-Prediction-*` headers."""
        png, result = await runtime.explain_upload(*await _read(file), x_tenant)
        headers = {
            "X-Prediction-Label": quote(result["label"]),
            "X-Prediction-Low-Confidence": str(result["low_confidence"]).lower(),
        }
        return Response(content=png, media_type="image/png", headers=headers)

    add_tenant_routes(router)
    return router
