"""Decoding PNG, JPEG and DICOM, and the errors bad files get."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medical_imaging.io import decode_image, dicom_summary, read_image_file
from medical_imaging.synthetic import SYNTHETIC_PATIENT_NAME, write_dicom
from shared.errors import InputError


def png_bytes(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


def test_gray_png_decodes_to_unit_range():
    array = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    out = decode_image(png_bytes(array), "a.png")
    assert out.shape == (16, 64) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == pytest.approx(252 / 255)


def test_sixteen_bit_png_keeps_its_depth():
    array = np.full((12, 12), 32768, dtype=np.uint16)
    out = decode_image(png_bytes(array), "deep.png")
    assert out.shape == (12, 12)
    assert out.max() == pytest.approx(0.5, abs=1e-3)


def test_rgb_jpeg_decodes_to_three_channels():
    array = np.zeros((20, 30, 3), dtype=np.uint8)
    array[..., 0] = 255
    out = decode_image(png_bytes(array, fmt="JPEG"), "a.jpg")
    assert out.shape == (20, 30, 3)
    assert out[..., 0].mean() > 0.9 and out[..., 2].mean() < 0.1


def test_dicom_rescale_and_window_recover_the_image(tmp_path):
    image = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    write_dicom(tmp_path / "a.dcm", image)
    out = read_image_file(tmp_path / "a.dcm")
    assert np.abs(out - image).max() < 1e-3


def test_dicom_narrow_window_clips_and_monochrome1_inverts(tmp_path):
    import pydicom

    image = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    write_dicom(tmp_path / "a.dcm", image)
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    ds.WindowCenter, ds.WindowWidth = (
        0,
        100,
    )  # around modality value 0 = stored 1024 = 0.25 of the range
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "b.dcm")
    out = read_image_file(tmp_path / "b.dcm")
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0] == 1.0 and out[-1, -1] == 0.0  # dark stored values are bright after inversion
    assert ((out > 0) & (out < 1)).mean() < 0.1  # most pixels fall outside the narrow window


def test_dicom_summary_holds_no_identifiers(tmp_path):
    import pydicom

    write_dicom(tmp_path / "a.dcm", np.zeros((16, 16), dtype=np.float32))
    summary = dicom_summary(pydicom.dcmread(tmp_path / "a.dcm"))
    assert summary["Modality"] == "OT"
    assert SYNTHETIC_PATIENT_NAME not in str(summary) and "SYN-0001" not in str(summary)


@pytest.mark.parametrize(
    ("data", "name", "status", "words"),
    [
        (b"", "e.png", 400, "empty"),
        (b"hello, this is text", "t.png", 415, "not an image"),
        (b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 10, "c.dcm", 422, "corrupt"),
        (png_bytes(np.zeros((4, 4), dtype=np.uint8)), "tiny.png", 422, "at least"),
        (png_bytes(np.zeros((10, 9000), dtype=np.uint8)), "wide.png", 413, "limit"),
    ],
)
def test_bad_files_get_clear_errors(data, name, status, words):
    with pytest.raises(InputError) as info:
        decode_image(data, name)
    assert info.value.status_code == status
    assert words in str(info.value) and name in str(info.value)


def test_truncated_png_is_corrupt():
    data = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    with pytest.raises(InputError) as info:
        decode_image(data[: len(data) // 2], "cut.png")
    assert info.value.status_code == 422 and "corrupt" in str(info.value)


def test_multi_frame_image_is_rejected():
    frames = [Image.fromarray(np.full((16, 16), v, dtype=np.uint8)) for v in (0, 128)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError) as info:
        decode_image(buffer.getvalue(), "stack.tif")
    assert info.value.status_code == 422 and "2 frames" in str(info.value)


def test_multi_frame_dicom_is_rejected(tmp_path):
    import pydicom

    write_dicom(tmp_path / "a.dcm", np.zeros((16, 16), dtype=np.float32))
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    ds.NumberOfFrames = 2
    ds.PixelData = np.zeros((2, 16, 16), dtype=np.uint16).tobytes()
    ds.save_as(tmp_path / "b.dcm")
    with pytest.raises(InputError) as info:
        read_image_file(tmp_path / "b.dcm")
    assert info.value.status_code == 422 and "2-D" in str(info.value)
