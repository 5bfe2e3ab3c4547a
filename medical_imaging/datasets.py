"""Image sources (manifest CSV, class folders, MedMNIST npz), patient-level splits, and loading.

A source lists its images (file paths or an in-memory array), their labels and, when known, the
patient each belongs to and a predefined split. Images are decoded once, resized to the model's
input size and kept as a float16 tensor, so epochs never touch the disk again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medical_imaging.io import read_image_file
from medical_imaging.labels import apply_class_names
from medical_imaging.schemas import MANIFEST_SCHEMA
from medical_imaging.transforms import to_model_input
from shared.data import fingerprint, load_table, read_image_folder, read_npz_splits, split_indices
from shared.errors import DataError, InputError

log = logging.getLogger(__name__)


@dataclass
class ImageSource:
    """Images with labels; `groups` are patient ids, `splits` a predefined train/val/test per item."""

    origin: Path
    labels: list[str]
    paths: list[Path] | None = None
    arrays: np.ndarray | None = None
    groups: list[str] | None = None
    splits: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        """How an error message refers to item `i`."""
        return str(self.paths[i]) if self.paths is not None else f"{self.origin}[{i}]"

    def fingerprint(self) -> str:
        if self.paths is not None and self.origin.is_file():  # a manifest: hash it and its images
            return fingerprint(self.origin, *self.paths)
        return fingerprint(self.origin)


def read_source(path: str | Path, class_names: list[str] | None = None) -> ImageSource:
    """Reads a manifest CSV (`path, label[, patient_id, split]`), a class-folder tree or an npz.

    Args:
        class_names: Names of integer labels (an npz's `0`, `1`, ...), in label order: label i
            becomes `class_names[i]`.

    Raises:
        DataError: naming the file (and row) when the source is missing or malformed, or when
            `class_names` does not give one name per integer class.
    """
    path = Path(path)
    if path.is_dir():
        paths, labels = read_image_folder(path)
        source = ImageSource(origin=path, labels=labels, paths=paths)
    elif path.suffix.lower() == ".npz":
        source = _read_npz(path)
    elif path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".parquet"):
        source = _read_manifest(path)
    else:
        raise DataError(
            f"{path}: expected a manifest CSV, a folder of class subfolders, or a MedMNIST .npz"
        )
    if class_names is not None:
        source.labels = apply_class_names(source.labels, class_names, path)
    return source


def _read_manifest(path: Path) -> ImageSource:
    df = load_table(path, MANIFEST_SCHEMA)
    paths = [
        (path.parent / p).resolve() if not Path(p).is_absolute() else Path(p) for p in df["path"]
    ]
    missing = [
        f"{path}: row {i + 1}, column 'path': {p} not found"
        for i, p in enumerate(paths)
        if not p.is_file()
    ]
    if missing:
        raise DataError("invalid data:\n" + "\n".join(missing[:20]))
    groups = None
    if "patient_id" in df.columns and df["patient_id"].astype(str).str.strip().ne("").all():
        groups = df["patient_id"].astype(str).tolist()
    splits = None
    if "split" in df.columns and df["split"].astype(str).str.strip().ne("").all():
        splits = df["split"].astype(str).tolist()
    return ImageSource(
        origin=path,
        labels=df["label"].astype(str).tolist(),
        paths=paths,
        groups=groups,
        splits=splits,
    )


def _read_npz(path: Path) -> ImageSource:
    parts = read_npz_splits(path)
    arrays = np.concatenate([images for images, _ in parts.values()])
    labels = [str(int(v)) for _, values in parts.values() for v in values]
    splits = [name for name, (images, _) in parts.items() for _ in range(len(images))]
    return ImageSource(origin=path, labels=labels, arrays=arrays, splits=splits)


def split_source(
    source: ImageSource, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Train/val/test indices: the source's own split if it has one, else stratified and by patient.

    With patient ids, no patient appears in two splits.
    """
    if source.splits is not None:
        splits = np.asarray(source.splits)
        out = {name: np.flatnonzero(splits == name) for name in ("train", "val", "test")}
        if len(out["val"]) == 0:  # a source with train/test only: carve val out of train
            tr, va, _ = split_indices(
                len(out["train"]),
                labels=np.asarray(source.labels)[out["train"]],
                groups=_subset(source.groups, out["train"]),
                val_fraction=val_fraction,
                test_fraction=0.0,
                seed=seed,
            )
            out["train"], out["val"] = out["train"][tr], out["train"][va]
        return out
    tr, va, te = split_indices(
        len(source),
        labels=source.labels,
        groups=source.groups,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    return {"train": tr, "val": va, "test": te}


def _subset(values: list[str] | None, idx: np.ndarray) -> list[str] | None:
    return None if values is None else [values[i] for i in idx]


def load_images(source: ImageSource, indices: np.ndarray, size: int, in_chans: int) -> torch.Tensor:
    """Decodes and resizes the chosen images into a (N, C, size, size) float16 tensor.

    Raises:
        DataError: naming the file when an image cannot be decoded.
    """
    out = torch.empty((len(indices), in_chans, size, size), dtype=torch.float16)
    for row, i in enumerate(indices):
        if source.arrays is not None:
            image = source.arrays[i].astype(np.float32) / (
                255.0 if source.arrays.dtype == np.uint8 else 1.0
            )
            image = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        else:
            try:
                image = read_image_file(source.paths[i])
            except InputError as exc:
                raise DataError(f"{exc} (row {i + 1} of {source.origin})") from None
        out[row] = to_model_input(image, size, in_chans).to(torch.float16)
    return out
