"""Image data: class-subfolder trees and MedMNIST-style `.npz` files (`shared.data` re-exports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"}


def read_image_folder(root: str | Path) -> tuple[list[Path], list[str]]:
    """Lists images under `root/<class>/...`; returns paths and their class names.

    Raises:
        DataError: when `root` has no class subfolders holding images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    paths, labels = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.rglob("*")):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(file)
                labels.append(class_dir.name)
    if not paths:
        raise DataError(
            f"{root}: no images found in class subfolders (expected root/<class>/<image>)"
        )
    return paths, labels


def read_npz_splits(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads a MedMNIST-style npz (`train_images`, `train_labels`, ...) into split -> (images, labels).

    Images are (N, H, W) or (N, H, W, C) uint8; labels are flattened to (N,).
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: not a readable npz file: {exc}") from None
    splits = {}
    for split in ("train", "val", "test"):
        ik, lk = f"{split}_images", f"{split}_labels"
        if ik in archive and lk in archive:
            images, labels = archive[ik], archive[lk].reshape(len(archive[lk]), -1)[:, 0]
            if images.ndim not in (3, 4) or len(images) != len(labels):
                raise DataError(
                    f"{path}: {ik} has shape {images.shape}, expected (N, H, W[, C]) matching {lk}"
                )
            splits[split] = (images, labels)
    if not splits:
        raise DataError(
            f"{path}: no <split>_images / <split>_labels arrays (keys: {list(archive.keys())})"
        )
    return splits
