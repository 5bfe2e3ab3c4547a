"""The service: predictions with the stored threshold, Grad-CAM PNGs, bad uploads, privacy."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import medical_imaging
from medical_imaging.explain import COLORBAR_PX, TITLE_PX
from medical_imaging.synthetic import SYNTHETIC_PATIENT_NAME, make_scan, write_dicom
from shared.artifacts import load_json
from shared.config import load_config
from shared.registry import load_runtime
from shared.serving import create_app
from shared.settings import ServeSettings

URL = "/v1/medical_imaging"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny random-backbone artifact trained on generated scans (a quarter of them DICOM)."""
    root = tmp_path_factory.mktemp("mi_service")
    data = medical_imaging.VERTICAL.example_data(root / "data")
    cfg = load_config(
        medical_imaging.MedicalImagingConfig, overrides=dict(medical_imaging.SMOKE_OVERRIDES)
    )
    handler, root_logger = _Capture(), logging.getLogger()
    level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    try:
        artifact = medical_imaging.VERTICAL.train(cfg, data, root / "run")
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(level)
    return artifact, data, handler.text


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += self.format(record) + "\n"


def png(size: int = 40, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    image = make_scan(np.random.default_rng(seed), size, lesion=True)
    Image.fromarray((image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def client_for(artifact, **settings) -> TestClient:
    return TestClient(
        create_app(medical_imaging.VERTICAL, artifact, ServeSettings(device="cpu", **settings))
    )


def test_predict_returns_calibrated_label_at_the_stored_threshold(trained):
    artifact, _, _ = trained
    calibration = load_json(artifact / "calibration.json")
    with client_for(artifact) as client:
        response = client.post(f"{URL}/predict", files={"file": ("scan.png", png(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "label",
        "probabilities",
        "threshold",
        "decision_rule",
        "calibrated",
        "low_confidence",
    }
    assert body["calibrated"] is True and body["threshold"] == calibration["threshold"]
    assert body["decision_rule"] == "threshold"
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    expected = "lesion" if body["probabilities"]["lesion"] >= body["threshold"] else "normal"
    assert body["label"] == expected
    margin = calibration["low_confidence_margin"]
    assert body["low_confidence"] == (
        abs(body["probabilities"]["lesion"] - body["threshold"]) < margin
    )


def test_runtime_moves_the_decision_with_the_threshold(trained):
    artifact, _, _ = trained
    runtime = load_runtime(medical_imaging.VERTICAL, artifact, ServeSettings(device="cpu"))
    assert runtime.calibration["positive_label"] == "lesion"  # not "normal", though it sorts last
    probs = np.array([0.6, 0.4])  # labels sorted: lesion, normal -> positive index 0
    runtime.calibration["threshold"] = 0.5
    assert runtime._decide(probs)["label"] == "lesion"
    runtime.calibration["threshold"] = 0.7
    assert runtime._decide(probs)["label"] == "normal"


def test_dicom_upload_and_explain_png(trained, tmp_path):
    artifact, _, _ = trained
    write_dicom(tmp_path / "scan.dcm", make_scan(np.random.default_rng(1), 40, lesion=True))
    with client_for(artifact) as client:
        predicted = client.post(
            f"{URL}/predict", files={"file": ("scan.dcm", (tmp_path / "scan.dcm").read_bytes())}
        )
        explained = client.post(f"{URL}/explain", files={"file": ("scan.png", png(), "image/png")})
    assert predicted.status_code == 200, predicted.text
    assert explained.status_code == 200, explained.text
    assert explained.headers["content-type"] == "image/png"
    overlay = Image.open(io.BytesIO(explained.content))
    assert overlay.size == (256 + COLORBAR_PX, 256 + TITLE_PX) and overlay.mode == "RGB"
    assert explained.headers["x-prediction-label"] in ("lesion", "normal")


def test_cli_predict_rows_write_heatmaps(trained):
    artifact, data, _ = trained
    runtime = load_runtime(medical_imaging.VERTICAL, artifact, ServeSettings(device="cpu"))
    rows = medical_imaging.VERTICAL.example_inputs(data)
    results = runtime.predict(rows)
    assert len(results) == 3 and all(r["calibrated"] for r in results)
    heatmap = results[0]["heatmap_path"]
    assert Image.open(heatmap).size == (256 + COLORBAR_PX, 256 + TITLE_PX)


def _tiff_stack() -> bytes:
    frames = [Image.fromarray(np.full((16, 16), v, dtype=np.uint8)) for v in (0, 99)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def _huge_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((9000, 9000), dtype=np.uint8)).save(
        buffer, format="PNG", optimize=True
    )
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "payload", "status", "words"),
    [
        ("notes.txt", b"this is not an image at all", 415, "not an image"),
        ("scan.dcm", b"\0" * 128 + b"DICM" + b"\x01\x02garbage" * 20, 422, "corrupt"),
        ("empty.png", b"", 400, "empty"),
        ("stack.tif", "tiff", 422, "frames"),
        ("huge.png", "huge", 413, "limit"),
    ],
)
def test_bad_uploads_get_4xx_with_reason(trained, name, payload, status, words):
    artifact, _, _ = trained
    payload = (
        {"tiff": _tiff_stack, "huge": _huge_png}[payload]() if isinstance(payload, str) else payload
    )
    with client_for(artifact) as client:
        for route in ("predict", "explain"):
            response = client.post(f"{URL}/{route}", files={"file": (name, payload)})
            assert response.status_code == status, response.text
            assert words in response.json()["detail"] and name in response.json()["detail"]


def test_too_large_body_and_missing_file_field(trained):
    artifact, _, _ = trained
    with client_for(artifact, max_body_bytes=2000) as client:
        response = client.post(f"{URL}/predict", files={"file": ("big.png", png(size=200, seed=3))})
        assert response.status_code == 413 and "exceeds" in response.json()["detail"]
        response = client.post(f"{URL}/predict", data={"other": "x"})
        assert response.status_code == 422 and "file" in response.json()["detail"]


def test_uploads_are_kept_only_when_configured(trained, tmp_path):
    artifact, _, _ = trained
    with client_for(artifact, data_dir=tmp_path / "off") as client:
        assert client.post(f"{URL}/predict", files={"file": ("a.png", png())}).status_code == 200
    assert not (tmp_path / "off").exists()
    with client_for(artifact, data_dir=tmp_path / "on", keep_uploads=True) as client:
        assert client.post(f"{URL}/predict", files={"file": ("a.png", png())}).status_code == 200
    kept = list((tmp_path / "on" / "uploads").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == png()


def test_dicom_identifiers_never_reach_artifact_or_logs(trained):
    artifact, data, logs = trained
    assert any(p.suffix == ".dcm" for p in (data.parent / "images").iterdir())
    for path in artifact.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert SYNTHETIC_PATIENT_NAME.encode() not in content and b"SYN-0001" not in content, (
                path
            )
    assert SYNTHETIC_PATIENT_NAME not in logs and "SYN-0001" not in logs
    assert "calibration" in logs  # the capture did see the training logs


def test_tta_averages_over_views(trained):
    artifact, data, _ = trained
    runtime = load_runtime(medical_imaging.VERTICAL, artifact, ServeSettings(device="cpu"))
    rows = medical_imaging.VERTICAL.example_inputs(data)[1:]
    plain = runtime.predict(rows)
    runtime.cfg.tta = True
    averaged = runtime.predict(rows)
    assert [set(r["probabilities"]) for r in averaged] == [set(r["probabilities"]) for r in plain]
    assert any(
        abs(a["probabilities"]["lesion"] - p["probabilities"]["lesion"]) > 1e-7
        for a, p in zip(averaged, plain, strict=True)
    )
