"""`verticals compress finance_sentiment --method distill`: a shallower student of the artifact."""

from __future__ import annotations

import json

import pytest
import torch

import finance_sentiment as fs
from shared.compression import compress_artifact
from shared.registry import build_settings, load_runtime


def _load(folder):
    return load_runtime(fs.VERTICAL, folder, build_settings(fs.VERTICAL, device="cpu"))


@pytest.fixture(scope="module")
def distilled(trained, tmp_path_factory):
    artifact = trained("finance_sentiment")
    root = tmp_path_factory.mktemp("distill")
    data = fs.example_data(root / "data")  # the table the smoke artifact was trained on
    out = root / "student"
    compress_artifact(fs.VERTICAL, artifact, out, "distill", data, rounds=1)
    return artifact, data, out


def test_the_student_starts_from_the_teachers_layers_and_heads(trained):
    from finance_sentiment.distill import student_of

    teacher = _load(trained("finance_sentiment")).scorer.task
    student = student_of(teacher)
    assert len(teacher.backbone.encoder.layer) == 2 and len(student.backbone.encoder.layer) == 1
    last = teacher.backbone.encoder.layer[1].state_dict()
    for name, tensor in student.backbone.encoder.layer[0].state_dict().items():
        assert torch.equal(tensor, last[name]), name  # one of two layers: the last one
    assert torch.equal(student.head.weight, teacher.head.weight)
    assert (
        student.backbone is not teacher.backbone and student.backbone.config.num_hidden_layers == 1
    )


def test_the_distilled_artifact_is_shallower_and_records_where_it_came_from(distilled):
    artifact, _, out = distilled
    manifest = json.loads((out / "manifest.json").read_text())
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert manifest["compression"]["method"] == "distill"
    params = manifest["compression"]["params"]
    assert params["layers"] == {"teacher": 2, "student": 1} and params["train_rows"] > 0
    assert manifest["distilled_from"]["artifact"] == str(artifact)
    # the manifest's held-out metrics are the student's, measured by the distillation
    assert manifest["metrics"]["test_macro_f1"] == params["metrics"]["student_test_macro_f1"]
    rows = manifest["compression"]["measured"]["rows"]
    assert set(rows) == {"original", "distill"} and rows["distill"]["p50_ms"] > 0


def test_the_student_serves_like_any_artifact_and_can_be_quantized_again(distilled, tmp_path):
    _, data, out = distilled
    predictions = _load(out).predict([{"text": "Profit fell sharply."}, {"text": "Shares rose."}])
    assert all(set(p["probs"]) == {"negative", "neutral", "positive"} for p in predictions)
    compress_artifact(fs.VERTICAL, out, tmp_path / "int8", "int8", data, measure=False)
    section = json.loads((tmp_path / "int8" / "manifest.json").read_text())["compression"]
    assert section["method"] == "int8" and section["after"]["method"] == "distill"
    assert _load(tmp_path / "int8").predict([{"text": "Shares rose."}])[0]["label"]
