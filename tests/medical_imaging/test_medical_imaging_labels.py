"""Label semantics: the positive class of a binary task, npz class names, class-named metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import medical_imaging
from medical_imaging.datasets import read_source
from medical_imaging.labels import default_positive, resolve_labels
from medical_imaging.synthetic import write_dataset
from shared.artifacts import load_json, read_manifest
from shared.errors import DataError
from shared.serving import create_app
from shared.settings import ServeSettings

ORIGIN = Path("data.npz")


@pytest.mark.parametrize(
    ("names", "positive"),
    [
        (["lesion", "normal"], "lesion"),
        (["normal", "pneumonia"], "pneumonia"),
        (["Benign", "malignant"], "malignant"),
        (["negative", "positive"], "positive"),
        (["disease", "healthy"], "disease"),
        (["finding", "No Finding"], "finding"),
        (["0", "1"], None),
        (["cat", "dog"], None),
        (["benign", "normal"], None),
    ],
)
def test_the_positive_class_is_read_off_the_names_only_when_they_make_it_certain(names, positive):
    assert default_positive(names) == positive


def test_digit_or_unknown_binary_labels_without_positive_label_are_an_error():
    with pytest.raises(DataError) as digits:
        resolve_labels(["0", "1", "1"], None, ORIGIN, None)
    message = str(digits.value)
    assert "['0', '1']" in message and "positive_label=1" in message
    assert "positive_label=<one of ['0', '1']>" in message and "class_names=" in message
    with pytest.raises(DataError, match=r"\['cat', 'dog'\].*positive_label=dog"):
        resolve_labels(["cat", "dog"], None, ORIGIN, None)
    names, ids, positive = resolve_labels(["cat", "dog", "cat"], "Cat", ORIGIN, None)
    assert (names, ids.tolist(), positive) == (["cat", "dog"], [0, 1, 0], 0)
    with pytest.raises(DataError, match="not one of the labels"):
        resolve_labels(["0", "1"], "2", ORIGIN, None)


def test_positive_label_is_refused_for_a_multi_class_task():
    with pytest.raises(DataError, match="binary tasks only.*3 classes"):
        resolve_labels(["a", "b", "c"], "a", ORIGIN, None)
    names, _, positive = resolve_labels(["10", "2", "1"], None, ORIGIN, None)
    assert names == ["1", "2", "10"] and positive is None  # integers in numeric order


def test_npz_class_names_name_the_integer_labels(tmp_path, write_npz):
    path = write_npz(tmp_path / "d.npz", n_classes=3)
    source = read_source(path, class_names=["normal", "mild", "severe"])
    assert source.labels[:4] == ["normal", "mild", "severe", "normal"]
    names, ids, _ = resolve_labels(source.labels, None, path, ["normal", "mild", "severe"])
    assert names == ["normal", "mild", "severe"] and ids[:3].tolist() == [0, 1, 2]  # label order
    with pytest.raises(DataError, match=r"class_names has 2 names.*3 classes \(labels 0..2\)"):
        read_source(path, class_names=["normal", "abnormal"])
    with pytest.raises(DataError, match="repeats a name"):
        read_source(path, class_names=["a", "a", "b"])


def test_digit_labels_fail_before_any_image_is_loaded(tmp_path, monkeypatch, write_npz, train_cli):
    import medical_imaging.training as training

    def no_loading(*args, **kwargs):
        raise AssertionError("images were loaded before the labels were checked")

    monkeypatch.setattr(training, "load_images", no_loading)
    result = train_cli(write_npz(tmp_path / "d.npz"), tmp_path / "out")
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "positive_label=<one of ['0', '1']>" in text and "positive_label=1" in text
    assert not (tmp_path / "out" / "run").exists()


def test_positive_label_1_names_class_1_in_manifest_card_info_and_evaluate(
    tmp_path, write_npz, train_cli, evaluate_cli
):
    data = write_npz(tmp_path / "d.npz")
    result = train_cli(data, tmp_path / "out", "positive_label=1")
    assert result.exit_code == 0, result.output
    artifact = tmp_path / "out" / "artifact"
    manifest = read_manifest(artifact)
    metrics = manifest["metrics"]
    assert {"test_sensitivity_1", "test_specificity_1"} <= set(metrics)
    assert "test_sensitivity" not in metrics and "test_sensitivity_0" not in metrics
    assert manifest["positive_label"] == "1"
    assert manifest["metric_classes"] == {"test_sensitivity_1": "1", "test_specificity_1": "1"}
    assert manifest["decision_rule"]["rule"] == "threshold"
    assert manifest["decision_rule"]["text"].startswith("'1' when its calibrated probability >=")
    assert "| test_sensitivity_1 |" in (artifact / "README.md").read_text()
    calibration = manifest["calibration"]
    assert "validation has 8 images" in calibration["small_validation_warning"]
    assert set(calibration) >= {"kept", "cv_nll_fitted", "cv_nll_uncalibrated", "n_val"}
    stored = load_json(artifact / "calibration.json")
    assert stored["temperature_decision"]["kept"] == calibration["kept"]
    assert stored["temperature"] == (
        stored["temperature_decision"]["fitted_temperature"] if calibration["kept"] else 1.0
    )

    with TestClient(
        create_app(medical_imaging.VERTICAL, artifact, ServeSettings(device="cpu"))
    ) as client:
        info = client.get("/v1/info").json()
    assert info["positive_label"] == "1" and info["metric_classes"]["test_sensitivity_1"] == "1"
    assert info["decision_rule"]["positive_label"] == "1"

    report = evaluate_cli(artifact, data, tmp_path / "report")
    assert "'1'" in report["descriptions"]["sensitivity"]
    assert "'1'" in report["descriptions"]["specificity"]
    per_class = pd.read_csv(tmp_path / "report" / "per_class.csv").set_index("class")
    sensitivity = report["metrics"]["sensitivity"]
    assert sensitivity == pytest.approx(per_class.loc[1, "recall"])  # recall of class "1"
    assert sensitivity == pytest.approx(metrics["test_sensitivity_1"])  # the same test split
    assert report["metrics"]["specificity"] == pytest.approx(per_class.loc[0, "recall"])


def test_benign_malignant_needs_no_positive_label(tmp_path, train_cli):
    manifest = write_dataset(tmp_path / "data", n_patients=8, images_per_patient=2, size=32)
    df = pd.read_csv(manifest)
    df["label"] = df["label"].map({"lesion": "malignant", "normal": "benign"})
    df.to_csv(manifest, index=False)
    result = train_cli(manifest, tmp_path / "out")
    assert result.exit_code == 0, result.output
    written = read_manifest(tmp_path / "out" / "artifact")
    assert written["positive_label"] == "malignant"
    assert "test_sensitivity_malignant" in written["metrics"]
