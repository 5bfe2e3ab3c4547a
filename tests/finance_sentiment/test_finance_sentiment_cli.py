"""`predict` opens nothing for writing beside the artifact, and `verticals evaluate` writes the
finance report folder (metrics with their meaning, per-class report, confusion matrix, errors,
reliability diagram)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import finance_sentiment as fs
from finance_sentiment.settings import FinanceSettings
from shared.cli import app
from shared.registry import load_runtime
from shared.reports import EvaluationReport

runner = CliRunner()


@pytest.fixture
def models(fs_artifact, tmp_path, monkeypatch):
    """A copy of the smoke artifact in `tmp/models/artifact`; no finance variable set."""
    for name in ("VERTICALS_FINANCE_DB", "VERTICALS_DATA_DIR", "VERTICALS_FINANCE_WATCH_DIR"):
        monkeypatch.delenv(name, raising=False)
    shutil.copytree(fs_artifact, tmp_path / "models" / "artifact")
    return tmp_path / "models"


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def test_predicting_with_a_loaded_runtime_creates_no_file(models):
    before = _files(models)
    runtime = load_runtime(fs.VERTICAL, models / "artifact", FinanceSettings(device="cpu"))
    try:
        out = runtime.predict(fs.example_inputs(models))
        assert [r["label"] in ("negative", "neutral", "positive") for r in out] == [True, True]
    finally:
        runtime.close()
    assert _files(models) == before  # no monitor.db (nor -wal/-shm) beside or inside it
    # the same runtime writes its store beside the artifact as soon as it ingests
    runtime = load_runtime(fs.VERTICAL, models / "artifact", FinanceSettings(device="cpu"))
    try:
        item = {"id": "a", "ts": "2026-10-01T00:00:00Z", "text": "Norvale Bank cuts outlook"}
        assert runtime.ingest([item])["accepted"] == 1
    finally:
        runtime.close()
    assert (models / "monitor.db").is_file()


def test_cli_predict_leaves_the_artifact_folder_untouched(models, tmp_path):
    pd.DataFrame(
        {"id": ["x1", "x2"], "text": ["Quillon Systems raises guidance", "Shares slump"]}
    ).to_csv(tmp_path / "in.csv", index=False)
    before = _files(models)
    result = runner.invoke(
        app,
        [
            "predict",
            "finance_sentiment",
            "--artifact",
            str(models / "artifact"),
            "--input",
            str(tmp_path / "in.csv"),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["x1", "x2"]
    assert _files(models) == before


def test_evaluate_returns_a_report_with_named_metrics(models, tmp_path):
    data = fs.example_data(tmp_path / "data")
    runtime = load_runtime(fs.VERTICAL, models / "artifact", FinanceSettings(device="cpu"))
    try:
        report = fs.evaluate(runtime, data)
    finally:
        runtime.close()
    n = len(pd.read_csv(data))
    assert isinstance(report, EvaluationReport) and report.primary == "macro_f1"
    assert {"accuracy", "macro_f1", "ece", "n_test", "n_errors"} <= set(report.metrics)
    assert report.metrics["n_test"] == n and isinstance(report.metrics["n_test"], int)
    assert set(report.descriptions) == set(report.metrics)
    assert report.labels == ["negative", "neutral", "positive"]
    assert len(report.y_true) == len(report.y_pred) == n
    wrong = sum(t != p for t, p in zip(report.y_true, report.y_pred, strict=True))
    assert len(report.errors) == report.metrics["n_errors"] == wrong
    assert report.metrics["accuracy"] == pytest.approx(1 - wrong / n)
    assert set(report.plots) == {"reliability"}
    if report.errors:
        first = report.errors[0]
        assert {"input", "expected", "predicted", "confidence"} <= set(first)
        assert first["expected"] != first["predicted"]
        assert [e["confidence"] for e in report.errors] == sorted(
            (e["confidence"] for e in report.errors), reverse=True
        )


def test_cli_evaluate_writes_the_report_folder(models, tmp_path):
    data = fs.example_data(tmp_path / "data")
    out = tmp_path / "report"
    before = _files(models)
    args = ["evaluate", "finance_sentiment", "--artifact", str(models / "artifact")]
    result = runner.invoke(app, [*args, "--data", str(data), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert table.index("macro_f1") < table.index("accuracy")  # the primary metric first
    assert f"report written to {out}" in result.stdout
    names = {p.name for p in out.iterdir()}
    assert names == {
        "metrics.json",
        "classification_report.txt",
        "per_class.csv",
        "confusion_matrix.png",
        "errors.csv",
        "reliability.png",
    }
    payload = json.loads((out / "metrics.json").read_text())
    n = len(pd.read_csv(data))
    assert payload["primary"] == "macro_f1" and payload["metrics"]["n_test"] == n
    assert "n_test" in payload["descriptions"]
    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class["class"].tolist() == ["negative", "neutral", "positive"]
    assert per_class["support"].sum() == n
    assert "macro avg" in (out / "classification_report.txt").read_text()
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors.columns[:4]) == ["input", "expected", "predicted", "confidence"]
    assert len(errors) == payload["metrics"]["n_errors"]
    for png in ("confusion_matrix.png", "reliability.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _files(models) == before  # evaluating is predicting: no monitor.db either
