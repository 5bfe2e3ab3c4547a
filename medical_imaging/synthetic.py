"""Synthetic chest-film-like "scans" with and without lesion-like blobs, written by our own code.

Each scan is a bright field with two dark lung fields, rib-like stripes, smooth background
variation and noise; a positive scan adds one or two soft bright blobs inside a lung. Some scans
are written as DICOM (with rescale, a window, and a synthetic patient name that must never leak).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SYNTHETIC_PATIENT_NAME = "SYNTHETIC^DO-NOT-LEAK"


def make_scan(rng: np.random.Generator, size: int, lesion: bool) -> np.ndarray:
    """One (size, size) float32 scan in [0, 1]."""
    return make_scan_and_mask(rng, size, lesion)[0]


def make_scan_and_mask(
    rng: np.random.Generator, size: int, lesion: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One scan and its lesion mask: (size, size) float32 in [0, 1] and bool (all False if none).

    The mask is where a blob is within two standard deviations of its centre (>= 13.5% of its
    peak); the random draws are those of `make_scan`, so a seed gives the same scan either way.
    """
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j].astype(np.float32)
    image = np.full((size, size), rng.uniform(0.55, 0.7), dtype=np.float32)
    mask = np.zeros((size, size), dtype=bool)
    lungs = []
    for side in (-1, 1):
        cx, cy = side * rng.uniform(0.38, 0.5), rng.uniform(-0.1, 0.1)
        rx, ry = rng.uniform(0.3, 0.36), rng.uniform(0.6, 0.75)
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        image[inside] -= rng.uniform(0.3, 0.4)
        lungs.append((cx, cy, rx, ry))
    image += 0.05 * np.sin(yy * rng.uniform(14, 20) + rng.uniform(0, np.pi)) * (image < 0.45)
    image += _smooth_noise(rng, size, 0.08)
    if lesion:
        for _ in range(rng.integers(1, 3)):
            cx, cy, rx, ry = lungs[rng.integers(0, 2)]
            bx, by = cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(-0.6, 0.6) * ry
            sigma = rng.uniform(0.08, 0.14)
            distance2 = (xx - bx) ** 2 + (yy - by) ** 2
            image += rng.uniform(0.2, 0.4) * np.exp(-distance2 / (2 * sigma**2))
            mask |= distance2 <= (2 * sigma) ** 2
    image += rng.normal(0, 0.035, size=image.shape)
    return np.clip(image, 0, 1).astype(np.float32), mask


def _smooth_noise(rng: np.random.Generator, size: int, amplitude: float) -> np.ndarray:
    coarse = rng.normal(0, amplitude, size=(4, 4)).astype(np.float32)
    from PIL import Image

    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)


def write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray((image * 255).round().astype(np.uint8), mode="L").save(path)


def write_dicom(path: Path, image: np.ndarray, patient_name: str = SYNTHETIC_PATIENT_NAME) -> None:
    """A minimal secondary-capture DICOM: 12-bit data, a rescale and a window that maps it back."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.PatientName, ds.PatientID, ds.Modality = patient_name, "SYN-0001", "OT"
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024  # stored 0..4095 -> -1024..3071
    ds.WindowCenter, ds.WindowWidth = 1023.5, 4096  # the full rescaled range
    stored = (image * 4095).round().astype(np.uint16)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_dataset(
    folder: str | Path,
    *,
    n_patients: int,
    images_per_patient: int = 2,
    size: int = 96,
    positive_rate: float = 0.35,
    dicom_every: int = 0,
    seed: int = 0,
) -> Path:
    """Writes scans plus `manifest.csv` (`path, label, patient_id`); returns the manifest path.

    Args:
        dicom_every: Write every k-th image as DICOM instead of PNG (0: PNG only).
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, k = [], 0
    for patient in range(n_patients):
        for shot in range(images_per_patient):
            lesion = bool(rng.random() < positive_rate)
            image = make_scan(rng, size, lesion)
            k += 1
            suffix = ".dcm" if dicom_every and k % dicom_every == 0 else ".png"
            name = f"images/p{patient:04d}_{shot}{suffix}"
            (write_dicom if suffix == ".dcm" else write_png)(folder / name, image)
            rows.append(
                {
                    "path": name,
                    "label": "lesion" if lesion else "normal",
                    "patient_id": f"P{patient:04d}",
                }
            )
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest
