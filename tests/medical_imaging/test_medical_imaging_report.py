"""`verticals evaluate medical_imaging`: the report's figures, its folder, binary and multi-class."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import medical_imaging
from medical_imaging.evaluate import build_report
from medical_imaging.synthetic import write_dataset
from shared.cli import app
from shared.config import load_config
from shared.reports import write_report

runner = CliRunner()
BINARY_CAL = {"temperature": 1.0, "threshold": 0.3, "positive_index": 0, "method": "sensitivity"}
MULTI_CAL = {"temperature": 2.0, "threshold": None, "positive_index": None}


def _logits_for(p_positive):
    """Two-class logits whose softmax gives `p_positive` to class 0."""
    p = np.asarray(p_positive, dtype=np.float64)
    return np.stack([np.log(p), np.log(1 - p)], axis=1)


def _png(path):
    with Image.open(path) as image:
        image.verify()
        return image.format, image.size


def test_binary_report_decides_by_the_threshold_and_names_the_positive_class():
    # class 0 ("lesion") is positive; the threshold 0.3 calls p=0.35 a lesion, argmax would not
    p = [0.9, 0.35, 0.2, 0.1, 0.6]
    y_true = np.array([0, 0, 0, 1, 1])
    report = build_report(
        _logits_for(p), y_true, ["lesion", "normal"], BINARY_CAL, [f"im{i}.png" for i in range(5)]
    )
    assert report.y_pred == [0, 0, 1, 1, 0]
    m = report.metrics
    assert m["n_images"] == 5 and isinstance(m["n_images"], int)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(3 / 5) and m["accuracy_argmax"] == pytest.approx(2 / 5)
    assert m["auc"] == pytest.approx(4 / 6)  # 4 of the 6 lesion/normal pairs are ordered right
    expected_brier = np.mean((np.array(p) - (y_true == 0)) ** 2)
    assert m["brier"] == pytest.approx(expected_brier) and m["n_errors"] == 2
    assert report.primary == "auc" and m["threshold"] == 0.3
    assert "'lesion'" in report.descriptions["sensitivity"]
    assert "0.3000" in report.descriptions["accuracy"]
    assert "'normal'" in report.descriptions["accuracy"]
    assert [(e["input"], e["expected"], e["predicted"]) for e in report.errors] == [
        ("im2.png", "lesion", "normal"),
        ("im4.png", "normal", "lesion"),
    ]
    assert report.errors[0]["confidence"] == pytest.approx(0.8)  # P(normal) of the call made
    assert report.errors[1]["p_lesion"] == pytest.approx(0.6)


def test_multi_class_report_takes_the_argmax_and_a_macro_auc(tmp_path):
    rng = np.random.default_rng(0)
    y_true = np.repeat([0, 1, 2], 10)
    logits = rng.normal(size=(30, 3)) + 2.5 * np.eye(3)[y_true]
    labels = ["a", "b", "c"]
    report = build_report(logits, y_true, labels, MULTI_CAL, [str(i) for i in range(30)])
    assert report.y_pred == logits.argmax(1).tolist()
    m = report.metrics
    from sklearn.metrics import roc_auc_score

    from shared.calibration import softmax

    probs = softmax(logits, 2.0)
    assert m["auc"] == pytest.approx(roc_auc_score(y_true, probs, multi_class="ovr"))
    assert m["auc_b"] == pytest.approx(roc_auc_score(y_true == 1, probs[:, 1]))
    assert m["accuracy"] == pytest.approx((logits.argmax(1) == y_true).mean())
    assert "sensitivity" not in m and "threshold" not in m and "accuracy_argmax" not in m
    assert "argmax" in report.descriptions["accuracy"]
    folder = write_report(report, tmp_path / "rep")
    per_class = pd.read_csv(folder / "per_class.csv")
    assert list(per_class["class"]) == labels and per_class["support"].tolist() == [10, 10, 10]
    assert _png(folder / "roc.png")[0] == "PNG" and _png(folder / "reliability.png")[0] == "PNG"


def _evaluate_cli(artifact, data, out):
    result = runner.invoke(
        app,
        [
            "evaluate",
            "medical_imaging",
            "--artifact",
            str(artifact),
            "--data",
            str(data),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    return result.stdout  # the table (progress bars go to stderr)


def test_cli_evaluate_writes_the_imaging_report_folder(trained, tmp_path):
    artifact = trained("medical_imaging")
    data = medical_imaging.VERTICAL.example_data(tmp_path / "data")
    output = _evaluate_cli(artifact, data, tmp_path / "report")
    first = output.splitlines()[0].split()
    assert first[0] in ("auc", "accuracy") and float(first[1]) <= 1.0  # the primary first
    assert "n_images" in output and "sensitivity" in output and "'lesion'" in output
    folder = tmp_path / "report"
    payload = json.loads((folder / "metrics.json").read_text())
    m = payload["metrics"]
    n = len(pd.read_csv(data))
    assert m["n_images"] == n and isinstance(m["n_images"], int)  # no split column: every image
    assert f"n_images {n}" in " ".join(output.split())  # printed as an integer
    assert payload["primary"] in m and set(payload["descriptions"]) >= {"auc", "ece", "brier"}
    per_class = pd.read_csv(folder / "per_class.csv")
    assert sorted(per_class["class"]) == ["lesion", "normal"] and per_class["support"].sum() == n
    errors = pd.read_csv(folder / "errors.csv")
    assert list(errors.columns[:4]) == ["input", "expected", "predicted", "confidence"]
    assert len(errors) == m["n_errors"] and m["accuracy"] == pytest.approx(1 - len(errors) / n)
    assert (errors["expected"] != errors["predicted"]).all()
    assert all((data.parent / p).is_file() for p in errors["input"])
    for name in ("confusion_matrix.png", "reliability.png", "roc.png"):
        fmt, size = _png(folder / name)
        assert fmt == "PNG" and min(size) > 200


def test_cli_evaluate_works_end_to_end_for_three_classes(tmp_path):
    manifest = write_dataset(
        tmp_path / "data", n_patients=18, images_per_patient=2, size=40, positive_rate=0.5
    )
    df = pd.read_csv(manifest)
    normal = df.index[df["label"] == "normal"]
    df.loc[normal[::2], "label"] = "other"
    df.to_csv(manifest, index=False)
    cfg = load_config(
        medical_imaging.MedicalImagingConfig, overrides=dict(medical_imaging.SMOKE_OVERRIDES)
    )
    artifact = medical_imaging.VERTICAL.train(cfg, manifest, tmp_path / "run")
    output = _evaluate_cli(artifact, manifest, tmp_path / "report")
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())["metrics"]
    assert {"auc", "auc_lesion", "auc_normal", "auc_other"} <= set(m)
    assert "macro one-vs-rest" in output and "sensitivity" not in m
    per_class = pd.read_csv(tmp_path / "report" / "per_class.csv")
    assert sorted(per_class["class"]) == ["lesion", "normal", "other"]
    assert per_class["support"].sum() == len(df)
    assert _png(tmp_path / "report" / "roc.png")[0] == "PNG"
