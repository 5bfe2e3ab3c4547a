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
from shared.data import fingerprint, load_table, read_image_folder, read_npz_splits
from shared.data_import import map_labels
from shared.errors import DataError, InputError
from shared.splits import ResolvedSplits, normalise_splits, resolve_splits

log = logging.getLogger(__name__)


@dataclass
class ImageSource:
    """Images with labels; `groups` are patient ids, `splits` a predefined train/val/test per item
    ("" where the data leave an item's split to be drawn; None when no item has one)."""

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


def read_source(
    path: str | Path,
    class_names: list[str] | None = None,
    *,
    columns: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> ImageSource:
    """Reads a manifest CSV (`path, label[, patient_id, split]`), a class-folder tree or an npz.

    Args:
        class_names: Names of integer labels (an npz's `0`, `1`, ...), in label order: label i
            becomes `class_names[i]`.
        columns: Manifest column -> the user's column (see `shared.data_import.map_columns`).
        label_map: The user's label -> a class name, for every kind of source (matched as text,
            without case; labels it does not name are kept).

    Raises:
        DataError: naming the file (and row) when the source is missing, empty or malformed, or
            when `class_names` does not give one name per integer class.
    """
    path = Path(path)
    if path.is_dir():
        paths, labels = read_image_folder(path)
        source = ImageSource(origin=path, labels=relabel(labels, label_map), paths=paths)
    elif path.suffix.lower() == ".npz":
        source = _read_npz(path)
        source.labels = relabel(source.labels, label_map)
    elif path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".parquet"):
        source = _read_manifest(path, columns, label_map)
    else:
        raise DataError(
            f"{path}: expected a manifest CSV, a folder of class subfolders, or a MedMNIST .npz"
        )
    if class_names is not None:
        source.labels = apply_class_names(source.labels, class_names, path)
    return source


def relabel(labels: list[str], label_map: dict[str, str] | None) -> list[str]:
    """`labels` through `label_map`, by the rule a manifest's labels follow (`map_labels`)."""
    if not label_map:
        return labels
    import pandas as pd

    frame = map_labels(pd.DataFrame({"label": labels}), label_map, MANIFEST_SCHEMA)
    return frame["label"].astype(str).tolist()


def _read_manifest(
    path: Path, columns: dict[str, str] | None, label_map: dict[str, str] | None
) -> ImageSource:
    df = load_table(path, MANIFEST_SCHEMA, columns=columns, label_map=label_map)
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
    if "split" in df.columns:
        marks = normalise_splits(df["split"].tolist(), path)
        splits = marks.tolist() if (marks != "").any() else None
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


def resolve_source_splits(
    source: ImageSource, val_fraction: float, test_fraction: float, seed: int
) -> ResolvedSplits:
    """Train/val/test indices by the shared rule (`shared.splits.resolve_splits`).

    Items the source puts in a split stay there; the others are drawn stratified by label and
    by patient (no patient in two drawn splits). Fixed `val` items turn the drawn validation
    split off, fixed `test` items the drawn test split. A source that fixes every item but has
    no `val` (an npz or manifest of train and test only) draws validation from its training
    items, and no test.
    """
    marks = None
    if source.splits is not None:
        marks = np.asarray(source.splits, dtype=object)
        if not (marks == "").any() and not (marks == "val").any():
            marks = np.where(marks == "train", "", marks)
            test_fraction = 0.0
    return resolve_splits(
        len(source),
        fixed=marks,
        labels=source.labels,
        groups=source.groups,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )


def split_source(
    source: ImageSource, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Split name -> indices; see :func:`resolve_source_splits`."""
    return resolve_source_splits(source, val_fraction, test_fraction, seed).indices()


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
