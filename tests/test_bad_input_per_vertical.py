"""Each defect of the robustness review, as a request a client could send, per vertical."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from shared.registry import build_settings, get_vertical
from shared.serving import create_app


def _client(trained, name: str, tmp_path: Path) -> TestClient:
    artifact = Path(shutil.copytree(trained(name), tmp_path / "artifact"))
    vertical = get_vertical(name)
    extra = {"finance_db": tmp_path / "monitor.db"} if name == "finance_sentiment" else {}
    return TestClient(
        create_app(
            vertical, artifact, build_settings(vertical, device="cpu", data_dir=tmp_path, **extra)
        )
    )


def test_finance_lone_surrogate_is_a_422_and_harms_no_other_request(trained, tmp_path):
    url = "/v1/finance_sentiment"
    with _client(trained, "finance_sentiment", tmp_path) as c:
        raw = b'{"texts": ["ab\\ud800cd"]}'  # legal JSON, not encodable as UTF-8 text
        bad = c.post(f"{url}/score", content=raw, headers={"content-type": "application/json"})
        assert bad.status_code == 422 and "surrogate" in bad.text
        assert c.post(f"{url}/score", json={"texts": ["Profits rise"]}).status_code == 200
        items = [
            {"id": "s1", "ts": "2026-01-01T00:00:00Z", "text": "ab\x00cd"},
            {"id": "s2", "ts": "1600-01-01", "text": "An old item"},
            {"id": "s3", "ts": 1767225600, "text": "Epoch-dated item"},
            {"id": "s4", "ts": "2026-01-01T00:00:00.123456789+05:30", "text": "Nanosecond item"},
        ]
        body = c.post(f"{url}/ingest", json={"items": items}).json()
        assert body["accepted"] == 2
        reasons = {r["id"]: r["reason"] for r in body["rejected"]}
        assert "NUL" in reasons["s1"] and "1900 and 2200" in reasons["s2"]
        raw = b'{"items": [{"id": "s5", "ts": "2026-01-01", "text": "x\\udc00"}]}'
        mixed = c.post(f"{url}/ingest", content=raw, headers={"content-type": "application/json"})
        assert mixed.status_code == 200 and "surrogate" in mixed.json()["rejected"][0]["reason"]
        assert c.get(f"{url}/trends").status_code == 200  # nothing stored breaks the trends
        boolean = c.post(f"{url}/ingest", json={"items": [{"id": "b", "ts": True, "text": "x"}]})
        assert boolean.status_code == 422  # not read as epoch second 1


def test_finance_trends_over_too_many_points_get_a_422_that_suggests_a_window(trained, tmp_path):
    url = "/v1/finance_sentiment"
    with _client(trained, "finance_sentiment", tmp_path) as c:
        items = [
            {"id": "a", "ts": "2024-01-01T00:00:00Z", "text": "Lender cuts jobs"},
            {"id": "b", "ts": "2026-01-01T00:00:00Z", "text": "Lender raises dividend"},
        ]
        assert c.post(f"{url}/ingest", json={"items": items}).json()["accepted"] == 2
        started = time.perf_counter()
        r = c.get(f"{url}/trends", params={"window": "1min"})
        assert r.status_code == 422 and time.perf_counter() - started < 5
        assert "cap of 20000" in r.json()["detail"] and "window=" in r.json()["detail"]
        ok = c.get(f"{url}/trends", params={"window": "7D"})
        assert ok.status_code == 200
        part = c.get(
            f"{url}/trends", params={"window": "1D", "start": "2025-12-01", "end": "2026-02-01"}
        )
        points = [p for s in part.json()["series"] for p in s["points"] if p["volume"]]
        assert part.status_code == 200 and len(points) == 1


def test_finance_upload_errors_name_the_file_not_a_server_path(trained, tmp_path):
    with _client(trained, "finance_sentiment", tmp_path) as c:
        r = c.post(
            "/v1/finance_sentiment/ingest/file",
            files={"file": ("feed.csv", b"headline,when\nhello,2026-01-01\n", "text/csv")},
        )
        assert 400 <= r.status_code < 500 and "/tmp" not in r.text and str(tmp_path) not in r.text


def test_recommender_items_with_any_timestamp_precision_survive_a_restart(trained, tmp_path):
    url = "/v1/recommender"
    items = [
        {"item_id": "w1", "title": "Whole seconds", "created_at": "2026-01-01T00:00:00Z"},
        {"item_id": "w2", "title": "Fractional", "created_at": "2026-01-01T00:00:00.5+02:00"},
        {"item_id": "w3", "title": "Epoch millis", "created_at": 1767225600000},
        {"item_id": "w4", "title": "Old\u2028line", "created_at": "1901-01-01"},
    ]
    with _client(trained, "recommender", tmp_path) as c:
        assert c.post(f"{url}/items", json={"items": items}).status_code == 200
        bad = c.post(
            f"{url}/items",
            json={"items": [{"item_id": "w5", "title": "x", "created_at": "1500-01-01"}]},
        )
        assert bad.status_code == 422 and "1900" in bad.text
        events = [{"user_id": "u\u2029", "item_id": "w1", "event": "click", "ts": 1767225600}]
        assert c.post(f"{url}/events", json={"events": events}).status_code == 200
    with _client(trained, "recommender", tmp_path / "again") as _:
        pass  # another state folder: a fresh copy must start too
    vertical = get_vertical("recommender")
    artifact = tmp_path / "artifact"
    settings = build_settings(vertical, device="cpu", data_dir=tmp_path)
    with TestClient(create_app(vertical, artifact, settings)) as again:
        assert again.get("/ready").status_code == 200
        titles = {r["item_id"]: r["title"] for r in again.app.state.runtime.catalogue.records}
        assert titles["w4"] == "Old\u2028line" and "w3" in titles


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _huge_png(side: int) -> bytes:
    """A small file that declares side x side pixels (one flat colour compresses to little)."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _rle_dicom(rows: int, columns: int) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = RLELossless
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = rows, columns, 1, 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 7, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = encapsulate([b"\x00" * 64])  # one tiny RLE frame that claims 144 MP
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_images_over_the_pixel_limit_are_refused_from_the_header(trained, tmp_path, monkeypatch):
    url = "/v1/medical_imaging/predict"
    with _client(trained, "medical_imaging", tmp_path) as c:
        loads, data = [], _huge_png(8192)
        monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(1) or None)
        big = c.post(url, files={"file": ("big.png", data, "image/png")})
        assert big.status_code == 413 and "25,000,000 pixels" in big.json()["detail"]
        assert loads == []  # refused before any pixel was decoded
        monkeypatch.undo()
        dicom = c.post(
            url, files={"file": ("big.dcm", _rle_dicom(12000, 12000), "application/dicom")}
        )
        assert dicom.status_code == 413 and "12000x12000" in dicom.json()["detail"]
        Image.MAX_IMAGE_PIXELS, before = 1000, Image.MAX_IMAGE_PIXELS
        try:
            bomb = c.post(
                url, files={"file": ("bomb.png", _png(np.zeros((100, 100), np.uint8)), "image/png")}
            )
        finally:
            Image.MAX_IMAGE_PIXELS = before
        assert bomb.status_code == 413 and "decompression bomb" in bomb.json()["detail"]
        fine = c.post(
            url, files={"file": ("ok.png", _png(np.full((64, 64), 128, np.uint8)), "image/png")}
        )
        assert fine.status_code == 200


MEMORY_BUDGET_MB = 512
"""Peak memory one image request may add while decoding (README, "Serving")."""

_DECODE_PEAK = """
import sys
from medical_imaging.io import decode_image

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

data = open(sys.argv[1], "rb").read()
open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current RSS
base = status("VmRSS")
array = decode_image(data, "max.png")
print(array.shape, status("VmHWM") - base)
"""


@pytest.mark.parametrize("mode", ["RGB", "I;16"])
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_decoding_an_image_at_the_pixel_limit_stays_within_the_memory_budget(mode, tmp_path):
    side = 5000  # 25 megapixels: the limit
    ramp = np.add.outer(np.arange(side) % 251, np.arange(side) % 241).astype(np.uint16)
    image = (
        Image.fromarray(np.stack([ramp % 256] * 3, -1).astype(np.uint8))
        if mode == "RGB"
        else Image.fromarray(ramp * 100)
    )
    path = tmp_path / "max.png"
    image.save(path, format="PNG")
    assert path.stat().st_size < 10 * 1024 * 1024  # the upload fits the body limit
    out = subprocess.run(  # a fresh process: its peak is the decode's alone
        [sys.executable, "-c", _DECODE_PEAK, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    added_mb = float(out[-1])
    assert added_mb < MEMORY_BUDGET_MB, f"{mode}: decoding added {added_mb:.0f} MB"
