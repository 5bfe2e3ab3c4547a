"""The data report: counts per split and class, drops with reasons, and small-split warnings."""

from __future__ import annotations

import logging

from shared.data_report import MANIFEST_KEY, DataReport


def _report(val: int, test: int) -> DataReport:
    report = DataReport("data.csv", rows_read=100 + val + test + 4, tables={"data.csv": 9})
    report.drop("repeated text", 3)
    report.drop("repeated text", 1)
    report.drop("never happened", 0)
    report.add_splits(
        {"train": ["a"] * 60 + ["b"] * 40, "val": ["a"] * val, "test": ["b"] * test},
        fixed={"test": test},
        drawn_fractions={"val": 0.1, "test": 0.0},
    )
    report.check_heldout_sizes()
    return report


def test_the_report_counts_rows_per_split_and_class_and_drops_by_reason():
    data = _report(val=40, test=35).as_dict()
    assert data["dropped"] == {"repeated text": 4}
    assert data["splits"]["train"] == {"rows": 100, "fixed": 0, "drawn": 100}
    assert data["splits"]["test"] == {"rows": 35, "fixed": 35, "drawn": 0, "drawn_fraction": 0.0}
    assert data["classes"]["train"] == {"a": 60, "b": 40} and data["classes"]["val"] == {"a": 40}
    assert data["rows_used"] == 175 and data["rows_read"] == 179
    assert data["warnings"] == []  # 40 and 35 rows are enough
    assert MANIFEST_KEY == "data_report"


def test_small_validation_and_test_splits_are_warned_about_with_their_size():
    warnings = _report(val=6, test=0).warnings
    assert len(warnings) == 2
    assert warnings[0].startswith("validation has 6 rows (fewer than 30)")
    assert "cross-validation" in warnings[0] and "val_fraction" in warnings[0]
    assert warnings[1].startswith("test is empty")
    # here the drawn test split was turned off, so raising test_fraction would not help
    assert "split column" in warnings[1] and "test_fraction" not in warnings[1]


def test_the_block_is_logged_at_info_and_each_warning_at_warning(caplog):
    report = _report(val=6, test=35)
    with caplog.at_level(logging.INFO, logger="t"):
        report.log(logging.getLogger("t"))
    info, *warned = caplog.records
    assert info.levelno == logging.INFO and info.data_report == report.as_dict()
    text = info.getMessage()
    assert text.startswith("data report: data.csv") and "\n  dropped" in text
    assert "35 fixed by the split column, drawn split off" in text
    assert "classes: a 60, b 40" in text
    assert [r.levelno for r in warned] == [logging.WARNING]
    assert "validation has 6 rows" in warned[0].getMessage()


def test_many_classes_are_summarised_by_the_most_and_fewest():
    report = DataReport("d")
    report.add_splits({"train": [f"c{i}" for i in range(20) for _ in range(i + 1)]})
    assert "20 classes; most: c19 20" in report.format() and "fewest:" in report.format()


def test_an_empty_test_split_when_the_split_column_fixes_every_row_says_so():
    report = DataReport("data.csv", rows_read=80)
    report.add_splits(
        {"train": ["a"] * 40 + ["b"] * 40, "val": ["a"] * 20 + ["b"] * 20, "test": []},
        fixed={"train": 80, "val": 40},
        drawn_fractions={"val": 0.0, "test": 0.15},  # nothing was left to draw a test split from
    )
    report.check_heldout_sizes()
    assert len(report.warnings) == 1 and report.warnings[0].startswith("test is empty")
    assert "split column" in report.warnings[0] and "test_fraction" not in report.warnings[0]
