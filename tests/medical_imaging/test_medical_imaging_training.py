"""Training on the core contracts: the config, the monitored metric, settings into load."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import medical_imaging
from medical_imaging.synthetic import write_dataset
from shared.artifacts import read_manifest
from shared.config import load_config
from shared.errors import VerticalsError
from shared.registry import load_runtime
from shared.settings import ServeSettings


def _train(data, out, **trainer):
    overrides = dict(medical_imaging.SMOKE_OVERRIDES)
    overrides["trainer"] = {**overrides["trainer"], **trainer}
    cfg = load_config(medical_imaging.MedicalImagingConfig, overrides=overrides)
    return medical_imaging.VERTICAL.train(cfg, data, out)


def _history(artifact):
    lines = (artifact.parent / "run" / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_the_base_model_is_config_model_and_trainer_defaults_survive_a_partial_override():
    cfg = load_config(medical_imaging.MedicalImagingConfig, overrides=["trainer.epochs=2"])
    assert cfg.model == "efficientnet_lite0" and cfg.trainer.epochs == 2
    assert (cfg.trainer.schedule, cfg.trainer.freeze_backbone_epochs) == ("cosine", 1)
    assert cfg.trainer.early_stopping_patience == 3 and cfg.trainer.monitor is None
    with pytest.raises(VerticalsError, match="backbone"):
        load_config(medical_imaging.MedicalImagingConfig, overrides=["backbone=resnet18"])


def test_the_best_epoch_is_chosen_by_validation_auc_and_recorded(tmp_path):
    data = medical_imaging.VERTICAL.example_data(tmp_path / "data")
    artifact = _train(data, tmp_path / "run", max_steps=4, epochs=2)
    manifest = read_manifest(artifact)
    metrics, training = manifest["metrics"], manifest["training"]
    assert (training["monitor"], training["monitor_mode"]) == ("val_auc", "max")
    assert isinstance(training["best_epoch"], int) and training["best_epoch"] in (1, 2)
    best = max(_history(artifact), key=lambda row: row["val_auc"])  # first of equals, as the loop
    assert training["best_epoch"] == best["epoch"]
    assert isinstance(metrics["n_train"], int)
    assert "best on `val_auc`" in (artifact / "README.md").read_text()


def test_a_validation_split_without_a_class_monitors_accuracy_not_a_mislabelled_auc(tmp_path):
    manifest = write_dataset(
        tmp_path / "data", n_patients=16, images_per_patient=2, size=40, positive_rate=0.5
    )
    df = pd.read_csv(manifest)
    normal = df.index[df["label"] == "normal"]
    df["split"] = "train"
    df.loc[normal[:4], "split"] = "val"  # validation holds no lesion: its AUC is undefined
    df.loc[df.index[-4:].difference(normal[:4]), "split"] = "test"
    df.to_csv(manifest, index=False)
    artifact = _train(manifest, tmp_path / "run")
    training = read_manifest(artifact)["training"]
    assert training["monitor"] == "val_accuracy" and training["best_epoch"] == 1
    (row,) = _history(artifact)
    assert "val_accuracy" in row and "val_auc" not in row


def test_load_takes_the_device_and_the_engine_batching_from_the_settings(tmp_path):
    data = medical_imaging.VERTICAL.example_data(tmp_path / "data")
    artifact = _train(data, tmp_path / "run")
    settings = ServeSettings(device="cpu", max_batch_size=2, max_wait_ms=1.5)
    runtime = load_runtime(medical_imaging.VERTICAL, artifact, settings)
    assert runtime.device.type == "cpu"
    assert (runtime.engine.max_batch_size, runtime.engine.max_wait_ms) == (2, 1.5)
    results = runtime.predict(medical_imaging.VERTICAL.example_inputs(data))
    assert len(results) == 3 and runtime.engine.stats.batches == 2  # batches of at most 2
