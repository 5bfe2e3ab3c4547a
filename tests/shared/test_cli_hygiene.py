"""CLI hygiene: defaults you can see, typos with a suggestion, runs that never clobber, reports."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from shared.cli import app
from shared.config import config_yaml, load_config
from shared.registry import get_vertical, vertical_names

runner = CliRunner()


@pytest.mark.parametrize("name", vertical_names())
def test_config_prints_commented_yaml_that_loads_back_to_the_defaults(name):
    result = runner.invoke(app, ["config", name])
    assert result.exit_code == 0, result.output
    config_cls = get_vertical(name).config_cls
    assert load_config(config_cls, None, yaml.safe_load(result.output)) == load_config(config_cls)
    assert "# Passes over the training data. (int)" in result.output  # meanings, not just values
    assert result.output.count("\n#") + result.output.count("  #") > 10


def test_config_applies_overrides_and_a_subclass_keeps_its_parents_meaning(toy_vertical):
    result = runner.invoke(app, ["config", "toy", "trainer.lr=0.5"])
    assert result.exit_code == 0 and "lr: 0.5" in result.output
    # ToyTrainerConfig redefines `batch_size` without a docstring: TrainerConfig's text is used
    assert "# Examples per optimizer step" in result.output


def test_unknown_keys_get_did_you_mean_and_say_override(toy_vertical, tmp_path):
    result = runner.invoke(app, ["train", "toy", "--data", "x.csv", "trainer.epoch=2"])
    assert result.exit_code == 2
    assert "from overrides" in result.output and "did you mean epochs?" in result.output
    result = runner.invoke(app, ["config", "toy", "hiden=3"])
    assert result.exit_code == 2 and "did you mean hidden?" in result.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("trainr: {epochs: 1}\n")
    result = runner.invoke(app, ["config", "toy"])  # a clean run still works
    assert result.exit_code == 0
    with pytest.raises(
        Exception, match=rf"config file {cfg}: trainr: unknown key; did you mean trainer"
    ):
        load_config(get_vertical("toy").config_cls, cfg)


def test_config_yaml_round_trips_values_that_need_quoting():
    from shared.config import StrictModel

    class Odd(StrictModel):
        name: str = "yes"  # YAML 1.1 would read a bare yes as True
        empty: str = ""
        colon: str = "a: b"
        items: dict[str, str] = {}

    text = config_yaml(Odd())
    assert Odd.model_validate(yaml.safe_load(text)) == Odd()


def _train(data, out, *extra):
    return runner.invoke(app, ["train", "toy", "--data", str(data), "--out", str(out), *extra])


def test_train_refuses_a_used_out_and_prunes_checkpoints(toy_vertical, tmp_path):
    data = get_vertical("toy").example_data(tmp_path / "data")
    out = tmp_path / "run"
    first = _train(data, out)
    assert first.exit_code == 0, first.output
    assert "removed training checkpoints" in first.output
    assert not list(out.rglob("*.pt"))  # best.pt and checkpoint.pt are gone; the artifact stays
    created = json.loads((out / "artifact" / "manifest.json").read_text())["created"]

    again = _train(data, out)
    assert again.exit_code == 2 and "is not empty" in again.output and "--overwrite" in again.output
    assert json.loads((out / "artifact" / "manifest.json").read_text())["created"] == created

    kept = _train(data, out, "--overwrite", "--keep-checkpoint")
    assert kept.exit_code == 0, kept.output
    assert [p.name for p in out.rglob("*.pt")] == ["checkpoint.pt"]


def test_predict_lines_carry_the_row_and_its_id_or_input(toy_vertical, tmp_path):
    data = get_vertical("toy").example_data(tmp_path / "data")
    assert _train(data, tmp_path / "run").exit_code == 0
    artifact = str(tmp_path / "run" / "artifact")
    plain, with_id = tmp_path / "plain.csv", tmp_path / "ids.csv"
    plain.write_text("x,y\n3,0\n-3,0\n")
    with_id.write_text("id,x,y\nA7,3,0\nB2,-3,0\n")
    lines = [
        json.loads(line)
        for line in runner.invoke(
            app, ["predict", "toy", "--artifact", artifact, "--input", str(plain)]
        )
        .output.strip()
        .splitlines()
    ]
    assert [(r["row"], str(r["input"]["x"])) for r in lines] == [(0, "3"), (1, "-3")]
    assert all(r["label"] in {"left", "right"} for r in lines)
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(
        app,
        ["predict", "toy", "--artifact", artifact, "--input", str(with_id), "--output", str(out)],
    )
    assert result.exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["row"], r["id"]) for r in rows] == [(0, "A7"), (1, "B2")]
    assert [r["label"] for r in rows] == [r["label"] for r in lines]  # same points, same answers


def test_evaluate_writes_a_report_folder_and_prints_a_table(toy_vertical, tmp_path):
    import pandas as pd
    from PIL import Image

    data = get_vertical("toy").example_data(tmp_path / "data")
    assert _train(data, tmp_path / "run").exit_code == 0
    # a held-out table where the points near the border are likely missed
    heldout = tmp_path / "heldout.csv"
    pd.DataFrame(
        {
            "x": [2.0, -2.0, 0.05, -0.05],
            "y": [0, 0, 3, -3],
            "label": ["right", "left", "left", "right"],
        }
    ).to_csv(heldout, index=False)
    report = tmp_path / "report"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "toy",
            "--artifact",
            str(tmp_path / "run" / "artifact"),
            "--data",
            str(heldout),
            "--out",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split()[0] == "accuracy"  # the primary metric first
    assert (
        "points whose side is right" in result.output
        and f"report written to {report}" in result.output
    )
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["primary"] == "accuracy" and metrics["metrics"]["n_points"] == 4
    per_class = pd.read_csv(report / "per_class.csv")
    assert per_class["support"].sum() == 4 and set(per_class["class"]) == {"left", "right"}
    errors = pd.read_csv(report / "errors.csv")
    assert list(errors.columns[:4]) == ["input", "expected", "predicted", "confidence"]
    assert len(errors) == round((1 - metrics["metrics"]["accuracy"]) * 4)
    assert (errors["expected"] != errors["predicted"]).all()
    assert Image.open(report / "confusion_matrix.png").size[0] > 300
    assert "left" in (report / "classification_report.txt").read_text()

    as_json = runner.invoke(
        app,
        [
            "evaluate",
            "toy",
            "--artifact",
            str(tmp_path / "run" / "artifact"),
            "--data",
            str(heldout),
            "--out",
            str(report),
            "--json",
        ],
    )
    assert json.loads(as_json.output)["n_points"] == 4
    both = runner.invoke(
        app, ["evaluate", "toy", "--artifact", "a", "--data", "d", "--conversations", "c"]
    )
    assert both.exit_code == 2 and "exactly one of --data or --conversations" in both.output
    none = runner.invoke(app, ["evaluate", "toy", "--artifact", "a", "--conversations", "c"])
    assert none.exit_code == 2 and "has no conversation-test evaluation" in none.output
    assert runner.invoke(app, ["chat", "toy", "--artifact", "a"]).exit_code == 2


def test_any_artifact_loads_with_shared_load(toy_vertical, tmp_path):
    import shared

    data = get_vertical("toy").example_data(tmp_path / "data")
    assert _train(data, tmp_path / "run", "trainer.lr=0.05", "trainer.epochs=6").exit_code == 0
    model = shared.load(tmp_path / "run" / "artifact", max_batch_size=4)
    assert [r["label"] for r in model.predict([{"x": 3.0, "y": 0.0}, {"x": -3.0, "y": 0.0}])] == [
        "right",
        "left",
    ]
    assert model.engine.max_batch_size == 4  # the keyword reached the deployment settings
