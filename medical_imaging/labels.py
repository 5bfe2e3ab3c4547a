"""Label semantics: class names for integer labels, the positive class of a binary task, and
class-named metric keys.

A binary task's threshold and its sensitivity/specificity belong to one class, so that class
must be certain. It is taken from `positive_label`, or read off the names when exactly one of
them is a "normal" name (`normal`/`pneumonia`, `benign`/`malignant`). Digits (`0`/`1`) and two
names that say nothing are never guessed: training stops before it starts, saying what to set.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from shared.errors import DataError

NORMAL_NAMES = frozenset(
    {
        "normal",
        "negative",
        "healthy",
        "benign",
        "no_finding",
        "no_findings",
        "no_disease",
        "no_lesion",
        "none",
        "absent",
        "control",
        "false",
        "no",
    }
)
"""Names (lower case, spaces and dashes as `_`) that mean "no finding". No digit is among them:
whether `0` or `1` is the finding depends on how a data set was coded."""


def normalised(name: str) -> str:
    """`"No Finding"` -> `"no_finding"`: how a label is compared with `NORMAL_NAMES`."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def sorted_labels(labels: list[str]) -> list[str]:
    """The distinct labels in order: numerically when every one is an integer, else by name."""
    distinct = set(labels)
    if all(re.fullmatch(r"-?\d+", name) for name in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def apply_class_names(labels: list[str], class_names: list[str], origin: Path) -> list[str]:
    """Integer labels (`"0"`, `"1"`, ...) -> `class_names[label]`.

    Raises:
        DataError: when the labels are not integers from 0, or `class_names` does not hold one
            distinct name per class.
    """
    if len(set(class_names)) != len(class_names):
        raise DataError(f"class_names {class_names} repeats a name; give each class its own")
    if not all(re.fullmatch(r"\d+", label) for label in labels):
        found = sorted_labels(labels)[:10]
        raise DataError(
            f"{origin}: class_names applies to integer labels 0..K-1, but the labels are {found}"
        )
    n_classes = max(int(label) for label in labels) + 1
    if len(class_names) != n_classes:
        raise DataError(
            f"{origin}: class_names has {len(class_names)} names {class_names}, but the data have "
            f"{n_classes} classes (labels 0..{n_classes - 1}); give one name per class, in label "
            "order"
        )
    return [class_names[int(label)] for label in labels]


def resolve_labels(
    labels: list[str], positive_label: str | None, origin: Path, class_names: list[str] | None
) -> tuple[list[str], np.ndarray, int | None]:
    """The class names (the label map), each item's class id, and the positive class id.

    The label map follows `class_names` when given (so id i is still `class_names[i]`; the
    names of a config's `label_map`, in its order, serve the same way), then any other label by
    `sorted_labels`. The positive class is None for a multi-class task (decided by argmax).

    Raises:
        DataError: fewer than two labels; `positive_label` not a label, or set for a multi-class
            task; or a binary task whose positive class the names do not make certain.
    """
    present = set(labels)
    names = [n for n in dict.fromkeys(class_names or []) if n in present]
    names += sorted_labels([label for label in present if label not in names])
    if len(names) < 2:
        raise DataError(f"{origin}: needs at least two labels, found {names}")
    index = {name: i for i, name in enumerate(names)}
    ids = np.asarray([index[label] for label in labels])
    if positive_label is not None:
        positive_label = _match(positive_label, names)
        if len(names) > 2:
            raise DataError(
                f"positive_label={positive_label} applies to binary tasks only; {origin} has "
                f"{len(names)} classes {names}, each decided by argmax. Remove positive_label"
            )
        return names, ids, index[positive_label]
    if len(names) > 2:
        return names, ids, None
    guessed = default_positive(names)
    if guessed is None:
        raise DataError(ambiguous_message(names, origin))
    return names, ids, index[guessed]


def default_positive(names: list[str]) -> str | None:
    """The finding of a binary task when the names make it certain: the one label that is not a
    "normal" name. None for digits, two unknown names, or two "normal" names."""
    others = [name for name in names if normalised(name) not in NORMAL_NAMES]
    return others[0] if len(others) == 1 and len(names) == 2 else None


def ambiguous_message(names: list[str], origin: Path) -> str:
    """What to set when the positive class of a binary task cannot be read off its labels."""
    example = names[-1]
    return (
        f"{origin}: a binary task needs its positive class (the finding the threshold and "
        f"sensitivity are for), and the labels {names} do not say which it is. Set "
        f"positive_label=<one of {names}>, e.g. `verticals train medical_imaging --data "
        f'{origin} positive_label={example}` (YAML: `positive_label: "{example}"`)'
        + (
            ", or name the integer classes with class_names=[normal,pneumonia] (in label order)"
            if all(name.isdigit() for name in names)
            else ""
        )
    )


def _match(positive_label: str, names: list[str]) -> str:
    """`positive_label` as one of `names`, compared without case when that is unambiguous."""
    if positive_label in names:
        return positive_label
    folded = [name for name in names if name.casefold() == positive_label.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise DataError(f"positive_label {positive_label!r} is not one of the labels {names}")


def metric_suffix(name: str) -> str:
    """A label as the tail of a metric key: `"no finding"` -> `"no_finding"`."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_") or "class"


def decision_rule(names: list[str], calibration: dict) -> dict:
    """How a label is chosen, as the manifest, `/v1/info` and the card state it."""
    positive, threshold = calibration["positive_index"], calibration["threshold"]
    if positive is None or threshold is None:
        return {
            "rule": "argmax",
            "positive_label": None,
            "threshold": None,
            "text": "the most probable class (argmax of the calibrated probabilities); "
            "no threshold",
        }
    name, other = names[positive], names[1 - positive]
    return {
        "rule": "threshold",
        "positive_label": name,
        "threshold": threshold,
        "text": f"{name!r} when its calibrated probability >= {threshold:.4f}, else {other!r}",
    }


def label_semantics(names: list[str], calibration: dict, metric_classes: dict[str, str]) -> dict:
    """What the manifest (and `/v1/info`) say about the labels: the positive class, the decision
    rule, the class each class-dependent metric is about, and the temperature decision."""
    decision = calibration["temperature_decision"]
    return {
        "positive_label": calibration["positive_label"],
        "decision_rule": decision_rule(names, calibration),
        "metric_classes": metric_classes,
        "calibration": {
            "temperature": calibration["temperature"],
            **{k: v for k, v in decision.items() if k != "temperature"},
            "small_validation_warning": calibration["small_validation_warning"],
        },
    }
