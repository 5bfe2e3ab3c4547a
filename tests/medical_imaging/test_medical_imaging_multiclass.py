"""Multi-class imaging end to end through the CLI: train -> artifact -> evaluate -> serve."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.metrics import roc_auc_score

import medical_imaging
from shared.artifacts import load_json, read_manifest
from shared.serving import create_app
from shared.settings import ServeSettings

CLASSES = ["normal", "mild", "severe"]


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory, write_npz, train_cli):
    """A 3-class npz (integer labels) trained through `verticals train` with `class_names`."""
    root = tmp_path_factory.mktemp("three")
    data = write_npz(root / "d.npz", n_classes=3)
    result = train_cli(data, root / "out", "class_names=[normal,mild,severe]")
    assert result.exit_code == 0, result.output
    return root / "out" / "artifact", data, root


def test_the_manifest_states_the_argmax_rule_and_per_class_auc(three_classes):
    artifact, _, _ = three_classes
    manifest = read_manifest(artifact)
    assert manifest["label_map"] == CLASSES  # the npz's label order, named
    assert manifest["positive_label"] is None
    rule = manifest["decision_rule"]
    assert (rule["rule"], rule["threshold"]) == ("argmax", None) and "argmax" in rule["text"]
    metrics = manifest["metrics"]
    per_class = {f"test_auc_{name}" for name in CLASSES}
    assert {"test_auc"} | per_class <= set(metrics)
    assert not any("sensitivity" in key or "specificity" in key for key in metrics)
    assert manifest["metric_classes"] == {f"test_auc_{name}": name for name in CLASSES}
    assert load_json(artifact / "calibration.json")["threshold"] is None


def test_evaluate_reports_macro_and_per_class_auc(three_classes, tmp_path, evaluate_cli):
    artifact, data, _ = three_classes
    report = evaluate_cli(artifact, data, tmp_path / "report")
    metrics, descriptions = report["metrics"], report["descriptions"]
    assert {"auc", "auc_normal", "auc_mild", "auc_severe"} <= set(metrics)
    assert "macro one-vs-rest" in descriptions["auc"] and "argmax" in descriptions["accuracy"]
    assert "'mild' one-vs-rest" in descriptions["auc_mild"]
    manifest = read_manifest(artifact)["metrics"]
    assert metrics["auc"] == pytest.approx(manifest["test_auc"])  # the npz's test split
    assert metrics["auc_severe"] == pytest.approx(manifest["test_auc_severe"])
    assert metrics["n_images"] == 8  # the npz's test split
    per_class = pd.read_csv(tmp_path / "report" / "per_class.csv")
    assert list(per_class["class"]) == CLASSES and per_class["support"].tolist() == [3, 3, 2]
    errors = pd.read_csv(tmp_path / "report" / "errors.csv")
    assert len(errors) == metrics["n_errors"]
    assert set(errors["expected"]) | set(errors["predicted"]) <= set(CLASSES)  # names, not ints


def test_serving_predicts_by_argmax_with_no_threshold(three_classes):
    artifact, _, _ = three_classes
    buffer = io.BytesIO()
    image = np.random.default_rng(3).integers(0, 255, (28, 28), dtype=np.uint8)
    Image.fromarray(image).save(buffer, format="PNG")
    settings = ServeSettings(device="cpu")
    with TestClient(create_app(medical_imaging.VERTICAL, artifact, settings)) as client:
        response = client.post(
            "/v1/medical_imaging/predict", files={"file": ("x.png", buffer.getvalue())}
        )
        info = client.get("/v1/info").json()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["threshold"] is None and body["decision_rule"] == "argmax"
    assert set(body["probabilities"]) == set(CLASSES)
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert info["decision_rule"]["rule"] == "argmax" and info["positive_label"] is None
    assert info["metric_classes"]["test_auc_mild"] == "mild"


def test_macro_auc_is_the_one_vs_rest_mean():
    from medical_imaging.metrics import split_metrics

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    logits = rng.normal(size=(60, 3)) + 1.5 * np.eye(3)[labels]
    calibration = {"temperature": 1.0, "threshold": None, "positive_index": None}
    metrics, classes = split_metrics(logits, labels, calibration, CLASSES, "test")
    from shared.calibration import softmax

    probs = softmax(logits)
    assert metrics["test_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    assert metrics["test_auc_mild"] == pytest.approx(roc_auc_score(labels == 1, probs[:, 1]))
    assert classes == {f"test_auc_{name}": name for name in CLASSES}
