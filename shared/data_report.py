"""The data report of a training run: what was read, what was dropped and why, and the splits.

Every `train` builds one, logs it as one readable block at the end, and stores
:meth:`DataReport.as_dict` in the artifact manifest under `data_report`, where the model card
shows it. A validation or test split too small to measure on is a warning, logged and kept in
the report.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_HELDOUT_ROWS = 30
"""Below this many rows a validation or test score is too noisy to rely on."""
MANIFEST_KEY = "data_report"
"""The manifest key under which `write_artifact(extra=...)` stores the report."""
_SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}
_MAX_CLASSES_SHOWN = 8


@dataclass
class DataReport:
    """Rows read, dropped (with the reason) and used, per split and per class.

    Attributes:
        source: The data file or folder.
        rows_read: Example rows read (after the tables were combined, before any drop).
        tables: Table name -> rows read from it.
        dropped: Reason -> rows dropped for it.
        splits: Split -> rows, with how many the `split` column fixed and how many were drawn.
        classes: Split -> class -> rows.
        other: Further held-out sets (say, out-of-scope questions): name -> split -> rows.
        warnings: What the user should know before trusting the metrics.
    """

    source: str
    rows_read: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    classes: dict[str, dict[str, int]] = field(default_factory=dict)
    other: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def drop(self, reason: str, rows: int) -> None:
        """Records `rows` dropped for `reason` (nothing when 0)."""
        if rows:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(rows)

    def add_splits(
        self,
        labels: Mapping[str, Sequence[Any]],
        fixed: Mapping[str, int] | None = None,
        drawn_fractions: Mapping[str, float] | None = None,
    ) -> None:
        """Counts each split's rows and classes from its labels (`labels`: split -> labels).

        `fixed` is the rows per split that the `split` column fixed (the rest were drawn), and
        `drawn_fractions` the share drawn for `val` and `test` (0 when fixed rows turned it off).
        """
        for name, values in labels.items():
            n_fixed = int((fixed or {}).get(name, 0))
            entry = {"rows": len(values), "fixed": n_fixed, "drawn": len(values) - n_fixed}
            if drawn_fractions and name in drawn_fractions:
                entry["drawn_fraction"] = float(drawn_fractions[name])
            self.splits[name] = entry
            counts = Counter(str(v) for v in values)
            self.classes[name] = dict(sorted(counts.items()))

    def warn(self, message: str) -> None:
        """Adds a warning (logged with the report)."""
        self.warnings.append(message)

    def check_heldout_sizes(self, minimum: int = MIN_HELDOUT_ROWS) -> None:
        """Warns for each of validation and test that has fewer than `minimum` rows."""
        for name in ("val", "test"):
            entry = self.splits.get(name, {})
            rows = entry.get("rows")
            if rows is None or rows >= minimum:
                continue
            word = _SPLIT_WORDS[name]
            use = "the epoch choice and calibration" if name == "val" else "the test metrics"
            every_row_fixed = all(e.get("drawn") == 0 for e in self.splits.values())
            if rows == 0 and (entry.get("drawn_fraction") == 0 or every_row_fixed):
                self.warn(
                    f"{word} is empty: the split column puts every row in another split, so "
                    f"there are no {use.removeprefix('the ')}; mark some rows `{name}` for them"
                )
                continue
            size = "is empty" if rows == 0 else f"has {rows} rows (fewer than {minimum})"
            self.warn(
                f"{word} {size}: {use} are too noisy to trust; add labelled rows (or raise "
                f"{name}_fraction), or compare recipes by cross-validation"
            )

    @property
    def rows_used(self) -> int:
        """Rows in the three splits together."""
        return sum(s["rows"] for s in self.splits.values())

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON data (the manifest's `data_report`)."""
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "tables": dict(self.tables),
            "dropped": dict(self.dropped),
            "splits": {k: dict(v) for k, v in self.splits.items()},
            "classes": {k: dict(v) for k, v in self.classes.items()},
            "other": {k: dict(v) for k, v in self.other.items()},
            "warnings": list(self.warnings),
        }

    def format(self, warnings: bool = True) -> str:
        """The report as a block of text for the training log (`warnings`: with its warnings)."""
        lines = [f"data report: {self.source}"]
        tables = ", ".join(f"{k} {v}" for k, v in self.tables.items())
        lines.append(f"  rows read      {self.rows_read:>7}" + (f"  ({tables})" if tables else ""))
        for reason, rows in self.dropped.items():
            lines.append(f"  dropped        {rows:>7}  {reason}")
        lines.append(f"  rows used      {self.rows_used:>7}")
        for name, split in self.splits.items():
            lines.append(f"  {name:<14} {split['rows']:>7}  {_origin(split)}")
            lines.extend(_class_lines(self.classes.get(name, {})))
        for name, counts in self.other.items():
            shown = ", ".join(f"{k} {v}" for k, v in counts.items())
            lines.append(f"  {name:<14} {sum(counts.values()):>7}  ({shown})")
        for message in self.warnings if warnings else []:
            lines.append(f"  WARNING: {message}")
        return "\n".join(lines)

    def log(self, logger: logging.Logger) -> None:
        """Logs the block at INFO (with the report as `data_report` for JSON logs), then each
        warning at WARNING, so that it stands out."""
        logger.info("%s", self.format(warnings=False), extra={MANIFEST_KEY: self.as_dict()})
        for message in self.warnings:
            logger.warning("data: %s", message)


def _origin(split: Mapping[str, Any]) -> str:
    parts = []
    if split["fixed"]:
        parts.append(f"{split['fixed']} fixed by the split column")
    fraction = split.get("drawn_fraction")
    if split["drawn"] or not split["fixed"]:
        share = f" ({fraction:.0%} of the rows without a split)" if fraction else ""
        parts.append(f"{split['drawn']} drawn{share}")
    if fraction == 0 and split["fixed"]:
        parts.append("drawn split off")
    return ", ".join(parts)


def _class_lines(counts: Mapping[str, int]) -> Iterable[str]:
    if not counts:
        return []
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) <= _MAX_CLASSES_SHOWN:
        return ["      classes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    fewest = ", ".join(f"{k} {v}" for k, v in ranked[-3:])
    most = ", ".join(f"{k} {v}" for k, v in ranked[:3])
    return [f"      {len(ranked)} classes; most: {most}; fewest: {fewest}"]
