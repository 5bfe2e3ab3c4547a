"""The images `train` uses: the splits (fixed by the data or drawn), the training cap, and the
data report (rows read, dropped and why, per split and class) that goes into the manifest.
"""

from __future__ import annotations

import numpy as np

from medical_imaging.config import MedicalImagingConfig
from medical_imaging.datasets import ImageSource, resolve_source_splits
from shared.data_report import DataReport
from shared.errors import DataError

CAP_REASON = "training images over max_images"


def prepare_splits(
    cfg: MedicalImagingConfig, source: ImageSource, names: list[str], ids: np.ndarray
) -> tuple[dict[str, np.ndarray], DataReport]:
    """Train/val/test indices (the training ones capped at `cfg.max_images`) and their report.

    Args:
        names: The class names (the label map); `ids` holds each item's index into them.

    Raises:
        DataError: when the training or the validation split is empty (the temperature and
            the threshold are fitted on validation images).
    """
    resolved = resolve_source_splits(source, cfg.val_fraction, cfg.test_fraction, cfg.trainer.seed)
    splits = resolved.indices()
    if len(splits["val"]) == 0 or len(splits["train"]) == 0:
        raise DataError(
            f"{source.origin}: too few images to hold out a validation split ({len(source)} "
            "images); add images, or mark some as val in a `split` column"
        )
    capped = cap_images(splits["train"], ids, cfg.max_images, cfg.trainer.seed)
    report = DataReport(
        str(source.origin), rows_read=len(source), tables={source.origin.name: len(source)}
    )
    report.drop(CAP_REASON, len(splits["train"]) - len(capped))
    splits["train"] = capped
    marks = np.asarray(source.splits if source.splits is not None else [""] * len(source))
    report.add_splits(
        {k: [names[i] for i in ids[idx]] for k, idx in splits.items()},
        fixed={k: int((marks[idx] == k).sum()) for k, idx in splits.items()},
        drawn_fractions=resolved.fractions,
    )
    report.check_heldout_sizes()
    _warn_shared_patients(report, source, splits)
    return splits, report


def _warn_shared_patients(
    report: DataReport, source: ImageSource, splits: dict[str, np.ndarray]
) -> None:
    """Warns when a patient has images in two splits (the `split` column put them there: drawn
    splits never share a patient), which flatters the held-out metrics."""
    if source.groups is None:
        return
    groups = np.asarray(source.groups, dtype=object)
    seen = {name: set(groups[idx]) for name, idx in splits.items()}
    shared = (seen["train"] & (seen["val"] | seen["test"])) | (seen["val"] & seen["test"])
    if shared:
        report.warn(
            f"{len(shared)} patient(s) have images in more than one split (e.g. "
            f"{sorted(shared)[:3]}); give all of a patient's images the same `split`, or none"
        )


def cap_images(indices: np.ndarray, ids: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """At most `limit` training images, drawn stratified by label."""
    if limit is None or len(indices) <= limit:
        return indices
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(indices, train_size=limit, random_state=seed, stratify=ids[indices])
    return np.sort(kept)
