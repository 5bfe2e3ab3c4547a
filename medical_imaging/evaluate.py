"""`verticals evaluate medical_imaging`: an artifact's metrics on labelled images it has not seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medical_imaging.datasets import load_images, read_source
from medical_imaging.metrics import heldout_metrics, predict_logits
from shared.errors import DataError


def evaluate(runtime, data_path: str | Path, split: str = "test") -> dict[str, float]:
    """Metrics of `runtime` on `data_path` (its `split` rows when it has splits, else every image).

    Uses the artifact's own temperature and threshold, exactly as the service does.
    """
    source = read_source(data_path)
    unknown = sorted(set(source.labels) - set(runtime.labels))
    if unknown:
        raise DataError(
            f"{data_path}: labels {unknown} are not known to the model ({runtime.labels})"
        )
    indices = np.arange(len(source))
    if source.splits is not None:
        indices = np.flatnonzero(np.asarray(source.splits) == split)
        if len(indices) == 0:
            raise DataError(f"{data_path}: has no {split!r} split")
    pixels = load_images(source, indices, runtime.cfg.image_size, runtime.cfg.in_chans)
    logits = predict_logits(
        runtime.task, pixels, tta=runtime.cfg.tta, hflip=runtime.cfg.augment.hflip
    )
    labels = np.asarray([runtime.labels.index(source.labels[i]) for i in indices])
    cal = runtime.calibration
    return heldout_metrics(
        logits,
        labels,
        temperature=cal["temperature"],
        threshold=cal["threshold"],
        positive_index=cal["positive_index"],
    )
