"""Training on a user's own table: mapped columns and labels, a split column, the data report."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

import finance_sentiment as fs
from finance_sentiment.generate import make_labelled
from shared.artifacts import read_manifest
from shared.config import config_yaml, load_config
from shared.errors import VerticalsError

CODES = {"negative": 0, "neutral": 1, "positive": 2}


def _users_table(folder) -> tuple:
    """The generated set as a user might hold it: other names, integer labels, a fold column."""
    df = make_labelled(n_per_template=2, seed=0)
    table = pd.DataFrame({"headline": df["text"], "label": df["sentiment"].map(CODES), "fold": ""})
    table.loc[table.index[:14], "fold"] = "TEST"  # 14 fixed test rows, in upper case
    table = pd.concat([table, table.iloc[20:23].assign(fold="")], ignore_index=True)  # 3 repeats
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "labelled.jsonl"
    table.to_json(path, orient="records", lines=True)
    return path, table


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs_import")
    path, table = _users_table(root / "data")
    overrides = [
        "model=random:bert-tiny",
        "trainer.max_steps=2",
        "trainer.epochs=1",
        "trainer.batch_size=8",
        "trainer.progress=false",
        "columns.text=headline",
        "columns.sentiment=label",
        "columns.split=fold",
        "label_map.0=negative",
        "label_map.1=neutral",
        "label_map.2=positive",
    ]
    cfg = load_config(fs.FinanceConfig, overrides=overrides)
    artifact = fs.train(cfg, path, root / "run")
    return table, read_manifest(artifact), artifact, path


def test_test_metrics_are_on_exactly_the_fixed_test_rows(imported):
    table, manifest, *_ = imported
    fixed = table["fold"].eq("TEST")
    report, metrics = manifest["data_report"], manifest["metrics"]
    assert metrics["test_rows"] == fixed.sum() == 14
    assert report["splits"]["test"] == {"rows": 14, "fixed": 14, "drawn": 0, "drawn_fraction": 0.0}
    names = {v: k for k, v in CODES.items()}
    expected = table.loc[fixed, "label"].map(names).value_counts().to_dict()
    assert report["classes"]["test"] == expected
    assert report["splits"]["val"]["drawn"] == metrics["val_rows"] > 0  # val is still drawn


def test_evaluate_reads_the_users_file_with_the_artifacts_mapping(imported, tmp_path):
    from shared.registry import build_settings, load_runtime

    table, _, artifact, path = imported
    settings = build_settings(fs.VERTICAL, device="cpu", finance_db=tmp_path / "m.db")
    runtime = load_runtime(fs.VERTICAL, artifact, settings)
    try:
        report = fs.evaluate(runtime, path)  # headline / integer label / fold, as trained
    finally:
        runtime.close()
    assert report.metrics["n_test"] == len(table)  # every row of the file, labels mapped


def test_the_report_counts_what_was_read_dropped_and_used(imported):
    table, manifest, *_ = imported
    report = manifest["data_report"]
    assert report["rows_read"] == len(table) == 123
    assert report["dropped"] == {"repeated text with the same sentiment": 3}
    assert report["rows_used"] == 120 == sum(s["rows"] for s in report["splits"].values())
    assert sum(report["classes"]["train"].values()) == manifest["metrics"]["train_rows"]


def test_small_held_out_splits_are_warned_about(imported):
    warnings = imported[1]["data_report"]["warnings"]
    assert any(w.startswith("test has 14 rows (fewer than 30)") for w in warnings)
    assert any(w.startswith("validation has ") for w in warnings)


def test_training_logs_the_report_as_one_block(tmp_path, caplog):
    path, _ = _users_table(tmp_path / "data")
    overrides = {
        **fs.VERTICAL.smoke_overrides,
        "columns": {"text": "headline", "sentiment": "label", "split": "fold"},
        "label_map": {0: "negative", 1: "neutral", 2: "positive"},  # YAML reads int keys
    }
    cfg = load_config(fs.FinanceConfig, overrides=overrides)
    with caplog.at_level(logging.INFO, logger="finance_sentiment.training"):
        fs.train(cfg, path, tmp_path / "run")
    blocks = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data report")]
    assert len(blocks) == 1 and "test                14  14 fixed by the split column" in blocks[0]
    assert any(
        r.levelno == logging.WARNING and "test has 14 rows" in r.getMessage()
        for r in caplog.records
    )


def test_import_settings_are_checked_and_documented(tmp_path):
    yaml_file = tmp_path / "cfg.yaml"
    yaml_file.write_text("columns: {text: headline}\nlabel_map: {0: Negative, 2: positive}\n")
    cfg = load_config(fs.FinanceConfig, yaml_file)
    assert cfg.columns == {"text": "headline"} and cfg.label_map == {
        "0": "negative",
        "2": "positive",
    }
    with pytest.raises(VerticalsError, match="columns: .*'headline_text'.*not columns"):
        load_config(fs.FinanceConfig, overrides=["columns.headline_text=x"])
    with pytest.raises(VerticalsError, match=r"label_map: .*\['bullish'\].*not sentiments"):
        load_config(fs.FinanceConfig, overrides=["label_map.1=bullish"])
    text = config_yaml(fs.FinanceConfig())
    assert "# Schema column -> your column" in text and "columns: {}" in text
    assert load_config(fs.FinanceConfig, overrides={}).columns == {}  # old configs: no mapping
