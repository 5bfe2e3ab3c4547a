"""The CLI: instant help, every command has an example, train/predict/evaluate/demo end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from shared.cli import app

runner = CliRunner()


def test_help_is_instant_and_imports_nothing_heavy():
    code = "import sys, shared.cli; print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output and "serve" in result.output


@pytest.mark.parametrize("command", ["list", "demo", "train", "evaluate", "predict", "serve"])
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_train_predict_end_to_end_with_overrides(toy_vertical, tmp_path):
    from shared.registry import get_vertical

    data = get_vertical(toy_vertical).example_data(tmp_path / "data")
    config = tmp_path / "cfg.yaml"
    config.write_text("trainer:\n  epochs: 2\n")
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "toy",
            "--data",
            str(data),
            "--config",
            str(config),
            "--out",
            str(out),
            "trainer.lr=0.05",
            "hidden=4",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "artifact" / "manifest.json").read_text())
    assert manifest["config"]["hidden"] == 4 and manifest["config"]["trainer"]["lr"] == 0.05

    inputs = tmp_path / "in.csv"
    inputs.write_text("x,y\n3,0\n-3,0\n")
    result = runner.invoke(
        app, ["predict", "toy", "--artifact", str(out / "artifact"), "--input", str(inputs)]
    )
    assert result.exit_code == 0, result.output
    labels = [json.loads(line)["label"] for line in result.output.strip().splitlines()]
    assert labels == ["right", "left"]

    # another vertical's artifact: one line naming both verticals, not a traceback
    result = runner.invoke(
        app,
        [
            "predict",
            "finance_sentiment",
            "--artifact",
            str(out / "artifact"),
            "--input",
            str(inputs),
        ],
    )
    assert (
        result.exit_code == 2
        and "is a 'toy' artifact, not a 'finance_sentiment' one" in result.output
    )
    assert "Traceback" not in result.output and "validation error" not in result.output


def test_user_errors_are_one_clear_line(toy_vertical, tmp_path):
    result = runner.invoke(
        app, ["train", "toy", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "missing.csv: file not found" in result.output
    result = runner.invoke(app, ["train", "toy", "--data", "x.csv", "trainer.epohcs=2"])
    assert result.exit_code == 2 and "epohcs" in result.output
    result = runner.invoke(app, ["train", "nope", "--data", "x.csv"])
    assert result.exit_code == 2 and "unknown vertical 'nope'" in result.output


def test_list_and_demo(toy_vertical, tmp_path):
    assert "toy" in runner.invoke(app, ["list"]).output
    result = runner.invoke(app, ["demo", "toy", "--out", str(tmp_path)])
    assert result.exit_code == 0 and "accuracy" in result.output
    assert "demo toy finished in" in result.output
