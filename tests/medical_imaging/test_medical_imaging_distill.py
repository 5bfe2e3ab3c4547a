"""Distilling an imaging artifact into a smaller timm network: an ordinary artifact results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medical_imaging.distill import distill, student_config
from shared.artifacts import read_manifest
from shared.registry import load_runtime
from shared.settings import ServeSettings


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, write_npz, train_cli):
    root = tmp_path_factory.mktemp("teacher")
    data = write_npz(root / "d.npz")
    result = train_cli(data, root / "out", "class_names=[normal,lesion]")
    assert result.exit_code == 0, result.output
    return root / "out" / "artifact", data


def test_the_student_config_keeps_the_data_settings_and_trains_everything(teacher):
    manifest = read_manifest(teacher[0])
    cfg = student_config(manifest, "random:mobilenetv3_small_050")
    assert cfg.model == "random:mobilenetv3_small_050" and cfg.recipe == "finetune"
    assert (cfg.trainer.freeze_backbone_epochs, cfg.trainer.backbone_lr) == (0, None)
    kept = ("image_size", "in_chans", "class_names", "val_fraction", "test_fraction")
    assert all(getattr(cfg, k) == manifest["config"][k] for k in kept)


def test_a_distilled_student_is_an_ordinary_artifact(teacher, tmp_path):
    import medical_imaging

    artifact, data = teacher
    student = distill(
        artifact, data, tmp_path / "student", student="random:mobilenetv3_small_050", epochs=1
    )
    manifest = read_manifest(student)
    assert manifest["config"]["model"] == "random:mobilenetv3_small_050"
    assert manifest["distilled_from"]["artifact"] == str(artifact)
    assert manifest["label_map"] == read_manifest(artifact)["label_map"]
    assert "test_auc" in manifest["metrics"]  # the same held-out split as the teacher's
    runtime = load_runtime(medical_imaging.VERTICAL, student, ServeSettings(device="cpu"))
    size = runtime.cfg.image_size
    pixels = torch.rand(2, runtime.cfg.in_chans, size, size)
    with torch.no_grad():
        probs = runtime.task.logits(pixels).softmax(-1).numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    teacher_params = sum(
        p.numel()
        for p in load_runtime(
            medical_imaging.VERTICAL, artifact, ServeSettings(device="cpu")
        ).task.parameters()
    )
    assert sum(p.numel() for p in runtime.task.parameters()) != teacher_params


def test_verticals_compress_distill_writes_a_student_artifact(teacher, tmp_path):
    from typer.testing import CliRunner

    from shared.cli import app

    artifact, data = teacher
    out = tmp_path / "small"
    args = ["compress", "medical_imaging", "--artifact", str(artifact), "--method", "distill"]
    result = CliRunner().invoke(app, [*args, "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest["config"]["model"] == "random:mobilenetv3_small_100"
    assert manifest["compression"]["method"] == "distill"
    rows = manifest["compression"]["measured"]["rows"]
    assert set(rows) == {"original", "distill"} and "val_auc" in result.output
    unsupported = CliRunner().invoke(
        app,
        [
            "compress",
            "medical_imaging",
            "--artifact",
            str(artifact),
            "--method",
            "int8",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert unsupported.exit_code != 0 and "distill" in unsupported.output
