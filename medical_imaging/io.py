"""Decoding PNG, JPEG and DICOM into float arrays in [0, 1], with clear errors for bad files.

DICOM pixel data goes through the modality LUT (rescale slope and intercept) and the header's
window (centre/width), and MONOCHROME1 is inverted so bright always means dense. Only the pixel
data and a handful of technical attributes are read: no header value that could identify a
patient is returned, logged or stored.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np

from shared.errors import InputError

log = logging.getLogger(__name__)

MAX_PIXELS = 25_000_000
"""Largest image accepted (pixels, all frames): a 5000x5000 scan; checked from the header,
before any pixel is decoded, so a small file that declares a huge image costs nothing."""
MAX_SIDE = 8192
WORKING_SIDE = 1024
"""Raster images are reduced while decoding until their shorter side is at most this (models
and heatmaps work at a few hundred pixels): a 25-megapixel upload never becomes a float copy of
itself."""
MIN_SIDE = 8
DICOM_SUFFIXES = {".dcm", ".dicom"}
# The only DICOM attributes we ever read besides pixel data: none identifies a patient.
SAFE_DICOM_FIELDS = ("Modality", "Rows", "Columns", "BitsStored", "PhotometricInterpretation")


def is_dicom(data: bytes, name: str = "") -> bool:
    """True for a DICOM Part 10 file (the `DICM` preamble) or a `.dcm` name."""
    return data[128:132] == b"DICM" or Path(name).suffix.lower() in DICOM_SUFFIXES


def decode_image(
    data: bytes, name: str = "upload", *, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE
) -> np.ndarray:
    """Decodes image bytes into a float32 array in [0, 1], (H, W) for gray or (H, W, 3) for colour.

    The size is read from the header first (PIL's, or DICOM `Rows`, `Columns` and frames), and
    an image over `max_pixels` or `max_side` is refused before its pixels are decoded. Raster
    images come back reduced to at most `WORKING_SIDE` a side.

    Raises:
        InputError: 400 for an empty file, 415 for bytes that are no image, 422 for a corrupt
            image or one with the wrong number of dimensions, 413 for one larger than the
            limits (a decompression bomb too). Each message names `name` and the reason.
    """
    if not data:
        raise InputError(f"{name}: empty file (0 bytes); upload a PNG, JPEG or DICOM image", 400)
    limits = (max_pixels, max_side)
    array = (
        _decode_dicom(data, name, limits)
        if is_dicom(data, name)
        else _decode_raster(data, name, limits)
    )
    _check_shape(array, name)
    return array


def read_image_file(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Reads and decodes one image file; see :func:`decode_image`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found", 404)
    return decode_image(path.read_bytes(), str(path), max_pixels=max_pixels)


def _check_size(name: str, width: int, height: int, frames: int, limits: tuple[int, int]) -> None:
    """413 when a declared size is over the pixel or side limit (before decoding)."""
    max_pixels, max_side = limits
    if width * height * max(frames, 1) > max_pixels or max(width, height) > max_side:
        raise InputError(
            f"{name}: image is {width}x{height} pixels"
            + (f" x {frames} frames" if frames > 1 else "")
            + f"; the limit is {max_pixels:,} pixels and {max_side} a side",
            413,
        )


def _open_raster(data: bytes, name: str):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InputError(
            f"{name}: declares more pixels than the limit of {MAX_PIXELS:,} (decompression bomb)",
            413,
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (expected PNG, JPEG or DICOM)", 415) from None
    except Exception as exc:
        raise InputError(f"{name}: cannot be read as an image: {exc}", 415) from None


def _decode_raster(data: bytes, name: str, limits: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    image = _open_raster(data, name)
    width, height = image.size
    _check_size(name, width, height, 1, limits)
    if getattr(image, "n_frames", 1) > 1:
        raise InputError(f"{name}: has {image.n_frames} frames; send one 2-D image", 422)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _reduced(image)
    except Exception as exc:
        raise InputError(f"{name}: corrupt or truncated image: {exc}", 422) from None
    if image.mode in ("L", "LA", "1"):
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float32)
        return _min_max(array) if image.mode in ("I", "F") else array / 65535.0
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _reduced(image):
    """The loaded image, reduced (box filter) so that its shorter side is about `WORKING_SIDE`."""
    scale = WORKING_SIDE / min(image.size)
    if scale >= 1 or image.mode not in ("RGB", "L", "RGBA", "LA", "P", "1", "CMYK", "YCbCr"):
        image.load()
        return image
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    image.draft(image.mode, size)  # JPEG decodes at a fraction of its size; others ignore it
    image.thumbnail(size)
    return image


def _decode_dicom(data: bytes, name: str, limits: tuple[int, int]) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except Exception as exc:
        raise InputError(
            f"{name}: corrupt or unreadable DICOM header ({type(exc).__name__})", 422
        ) from None
    _check_size(name, columns, rows, frames, limits)  # from the header, before the pixels
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        # The exception text never includes header values, only the structural problem.
        raise InputError(
            f"{name}: corrupt or unreadable DICOM ({type(exc).__name__})", 422
        ) from None
    if pixels.ndim == 3 and int(getattr(ds, "SamplesPerPixel", 1)) == 3:
        return _min_max(pixels.astype(np.float32))
    if pixels.ndim != 2:
        raise InputError(
            f"{name}: DICOM pixel data has shape {tuple(pixels.shape)}; send one 2-D image (no multi-frame)",
            422,
        )
    if "ModalityLUTSequence" in ds:
        values = apply_modality_lut(pixels, ds).astype(np.float32)
    else:  # slope and intercept in float32: no float64 copy of a large scan
        slope, intercept = (
            float(ds.get("RescaleSlope", 1) or 1),
            float(ds.get("RescaleIntercept", 0) or 0),
        )
        values = pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    values = _window(values, ds)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        values = 1.0 - values
    log.debug("decoded DICOM %s", dicom_summary(ds))
    return values


def _window(values: np.ndarray, ds) -> np.ndarray:
    """DICOM linear VOI windowing (PS3.3 C.11.2.1.2) to [0, 1]; min-max when the header has none."""
    center, width = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if center is None or width is None:
        return _min_max(values)
    center = float(center[0] if _is_multi(center) else center)
    width = max(1.0, float(width[0] if _is_multi(width) else width))
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0).astype(np.float32)


def _is_multi(value) -> bool:
    return isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"


def dicom_summary(ds) -> dict[str, object]:
    """Technical, non-identifying attributes of a DICOM dataset (safe to log)."""
    return {key: str(getattr(ds, key)) for key in SAFE_DICOM_FIELDS if hasattr(ds, key)}


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def _check_shape(array: np.ndarray, name: str) -> None:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise InputError(
            f"{name}: image has shape {tuple(array.shape)}; expected (H, W) or (H, W, 3)", 422
        )
    height, width = array.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise InputError(
            f"{name}: image is {width}x{height} pixels; at least {MIN_SIDE} per side are needed",
            422,
        )
