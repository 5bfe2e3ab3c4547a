"""`verticals evaluate medical_imaging`: an artifact's report on labelled images it has not seen.

The report (`shared.reports.EvaluationReport`) holds the named metrics with what each counts,
the per-class report and confusion matrix (from `y_true`/`y_pred`), every misclassified image,
a reliability diagram and ROC curves (`medical_imaging.report_plots`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from medical_imaging.datasets import ImageSource, load_images, read_source, resolve_source_splits
from medical_imaging.metrics import (
    brier_score,
    decide,
    heldout_metrics,
    per_class_auc,
    predict_logits,
)
from medical_imaging.report_plots import plot_roc
from shared.calibration import softmax
from shared.errors import DataError
from shared.reports import EvaluationReport, plot_reliability


def evaluate(runtime, data_path: str | Path, split: str = "test") -> EvaluationReport:
    """The report of `runtime` on `data_path` (its `split` rows when it has splits, else every image).

    A `split` column that fixes only some items is resolved as `train` resolved it (the
    artifact's fractions and seed), so the drawn test items are the ones training held out.

    Uses the artifact's own temperature, threshold (binary) or argmax (multi-class), exactly as
    the service does.

    Raises:
        DataError: when the data hold labels the model does not know, or no `split` rows.
    """
    cfg = runtime.cfg
    source = read_source(
        data_path, class_names=cfg.class_names, columns=cfg.columns, label_map=cfg.label_map
    )
    unknown = sorted(set(source.labels) - set(runtime.labels))
    if unknown:
        raise DataError(
            f"{data_path}: labels {unknown} are not known to the model ({runtime.labels})"
        )
    indices = np.arange(len(source))
    if source.splits is not None:  # the split as `train` resolved it (drawn the same way)
        resolved = resolve_source_splits(
            source, cfg.val_fraction, cfg.test_fraction, cfg.trainer.seed
        )
        indices = resolved.indices()[split]
        if len(indices) == 0:
            raise DataError(f"{data_path}: has no {split!r} split")
    pixels = load_images(source, indices, runtime.cfg.image_size, runtime.cfg.in_chans)
    logits = predict_logits(
        runtime.task, pixels, tta=runtime.cfg.tta, hflip=runtime.cfg.augment.hflip
    )
    y_true = np.asarray([runtime.labels.index(source.labels[i]) for i in indices])
    return build_report(
        logits, y_true, runtime.labels, runtime.calibration, _inputs(source, indices), split
    )


def build_report(
    logits: np.ndarray,
    y_true: np.ndarray,
    labels: list[str],
    calibration: dict,
    inputs: list[str],
    split: str = "test",
) -> EvaluationReport:
    """The report from (N, C) logits, (N,) true class ids and the artifact's calibration.

    Args:
        inputs: How each image is named in `errors.csv` (its path, or `file[index]`).
    """
    temperature, threshold = calibration["temperature"], calibration["threshold"]
    positive = calibration["positive_index"]
    probs = softmax(logits, temperature)
    y_pred = decide(probs, threshold, positive)
    raw = heldout_metrics(
        logits, y_true, temperature=temperature, threshold=threshold, positive_index=positive
    )
    metrics: dict[str, float | int] = {
        "n_images": int(len(y_true)),
        **{
            k: v
            for k, v in raw.items()
            if k != "n" and (positive is not None or k != "accuracy_argmax")
        },
        "brier": brier_score(probs, y_true, positive),
        "n_errors": int((y_pred != y_true).sum()),
    }
    descriptions = _descriptions(labels, calibration, split)
    if positive is None:
        for name, auc in per_class_auc(probs, y_true, labels).items():
            metrics[f"auc_{name}"] = auc
            descriptions[f"auc_{name}"] = f"ROC-AUC of {name!r} one-vs-rest"
    else:
        metrics["threshold"] = float(threshold)
    metrics["temperature"] = float(temperature)
    errors = _error_rows(probs, y_true, y_pred, labels, inputs)
    top = probs.max(axis=1) if len(probs) else np.zeros(0)
    argmax_correct = probs.argmax(axis=1) == y_true if len(probs) else np.zeros(0, bool)
    return EvaluationReport(
        metrics=metrics,
        descriptions=descriptions,
        labels=list(labels),
        y_true=y_true.tolist(),
        y_pred=y_pred.tolist(),
        errors=errors,
        plots={
            "reliability": partial(plot_reliability, top, argmax_correct),
            "roc": partial(plot_roc, y_true, probs, list(labels), positive, threshold),
        },
        primary="auc" if "auc" in metrics else "accuracy",
    )


def _error_rows(
    probs: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], inputs: list[str]
) -> list[dict]:
    """One row per misclassified image: its name, the labels, the predicted label's probability
    (`confidence`) and every class probability (`p_<label>`), all calibrated."""
    return [
        {
            "input": inputs[i],
            "expected": labels[y_true[i]],
            "predicted": labels[y_pred[i]],
            "confidence": round(float(probs[i, y_pred[i]]), 4),
            **{f"p_{name}": round(float(p), 4) for name, p in zip(labels, probs[i], strict=True)},
        }
        for i in np.flatnonzero(y_pred != y_true)
    ]


def _descriptions(labels: list[str], calibration: dict, split: str) -> dict[str, str]:
    """What each metric counts, naming the positive class and the decision rule."""
    positive = calibration["positive_index"]
    scored = f"images scored: the {split!r} split when the data have splits, else every image"
    out = {
        "n_images": scored,
        "n_errors": "images whose predicted label (the rule of `accuracy`) is wrong",
        "ece": "expected calibration error (15 bins) of the top-class probability, calibrated",
        "ece_uncalibrated": "ECE before temperature scaling",
        "nll": "mean negative log-likelihood of the true class, calibrated",
        "nll_uncalibrated": "NLL before temperature scaling",
        "accuracy_argmax": "share right when the most probable class is taken (no threshold)",
        "temperature": "softmax temperature fitted on validation (the artifact's)",
    }
    if positive is None:
        return out | {
            "auc": "macro one-vs-rest ROC-AUC over the classes (calibrated probabilities)",
            "accuracy": "share right; the label is the most probable class (argmax)",
            "brier": "multi-class Brier score: mean over images of the summed squared error "
            "of the class probabilities (0 is perfect, 2 the worst)",
        }
    name, threshold = labels[positive], calibration["threshold"]
    rule = f"{name!r} when its calibrated probability >= {threshold:.4f}"
    return out | {
        "auc": f"ROC-AUC of {name!r} (the positive class) against the rest",
        "accuracy": f"share right; the label is {rule}, else {labels[1 - positive]!r}",
        "sensitivity": f"share of true {name!r} images called {name!r} (rule: {rule})",
        "specificity": f"share of images that are not {name!r} called not {name!r}",
        "brier": f"Brier score of the calibrated probability of {name!r} (0 is perfect)",
        "threshold": f"the artifact's operating threshold on the probability of {name!r}, "
        f"chosen on validation ({calibration.get('method', '?')})",
    }


def _inputs(source: ImageSource, indices: np.ndarray) -> list[str]:
    """Image paths relative to the data folder when they lie inside it, else as given."""
    base = source.origin.parent if source.origin.is_file() else source.origin
    out = []
    for i in indices:
        name = Path(source.name(int(i)))
        try:
            out.append(str(name.relative_to(base.resolve())))
        except ValueError:
            out.append(str(name))
    return out
