"""Configs reject typos; artifacts are atomic, self-describing and never unpickled."""

from __future__ import annotations

import json

import pytest
import torch

from shared.artifacts import (
    ARTIFACT_FORMAT,
    atomic_folder,
    load_weights,
    read_manifest,
    recover_folder,
    save_weights,
    write_artifact,
)
from shared.config import StrictModel, TrainerConfig, load_config
from shared.errors import ArtifactError, VerticalsError


class Cfg(StrictModel):
    model: str = "minilm"
    trainer: TrainerConfig = TrainerConfig()


def test_yaml_plus_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: random:bert-tiny\ntrainer:\n  epochs: 7\n")
    cfg = load_config(Cfg, path, ["trainer.lr=3e-4", "trainer.precision=bf16"])
    assert (cfg.model, cfg.trainer.epochs, cfg.trainer.lr, cfg.trainer.precision) == (
        "random:bert-tiny",
        7,
        3e-4,
        "bf16",
    )


def test_unknown_keys_are_errors(tmp_path):
    with pytest.raises(VerticalsError, match="trainer.epohcs"):
        load_config(Cfg, overrides=["trainer.epohcs=3"])
    bad = tmp_path / "c.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(VerticalsError, match="not valid YAML"):
        load_config(Cfg, bad)
    with pytest.raises(VerticalsError, match="key=value"):
        load_config(Cfg, overrides=["epochs"])


def test_artifact_is_self_describing(tmp_path):
    with write_artifact(
        tmp_path / "a",
        vertical="v",
        model_name="m",
        config={"k": 1},
        metrics={"acc": 0.5, "auc": 1.0, "n_test": 51.0},
        label_map=["x", "y"],
        data_fingerprint="sha256:abc",
    ) as tmp:
        save_weights(tmp / "model.safetensors", {"w": torch.ones(2, 2)})
    manifest = read_manifest(tmp_path / "a")
    assert manifest["metrics"]["acc"] == 0.5 and manifest["label_map"] == ["x", "y"]
    card = (tmp_path / "a" / "README.md").read_text()
    assert "| n_test | 51 |" in card and "| auc | 1.0000 |" in card  # counts print as counts
    assert manifest["files"] == ["model.safetensors"] and "torch" in manifest["versions"]
    assert "| acc | 0.5000 |" in (tmp_path / "a" / "README.md").read_text()
    assert torch.equal(load_weights(tmp_path / "a" / "model.safetensors")["w"], torch.ones(2, 2))


def test_artifact_records_which_metric_kept_which_epoch(tmp_path):
    from shared.training import TrainResult

    result = TrainResult(
        history=[{"epoch": 1}, {"epoch": 2}, {"epoch": 3}],
        best=0.91,
        best_epoch=2,
        steps=30,
        monitor="val_macro_f1",
        monitor_mode="max",
    )
    with write_artifact(tmp_path / "a", vertical="v", model_name="m", config={}, training=result):
        pass
    training = read_manifest(tmp_path / "a")["training"]
    assert training == {
        "monitor": "val_macro_f1",
        "monitor_mode": "max",
        "best": 0.91,
        "best_epoch": 2,
        "epochs": 3,
        "steps": 30,
        "stopped_early": False,
    }
    card = (tmp_path / "a" / "README.md").read_text()
    assert "epoch 2 of 3 (30 steps), best on `val_macro_f1` (max: 0.91)" in card


def test_failed_write_leaves_previous_artifact_intact(tmp_path):
    with write_artifact(tmp_path / "a", vertical="v", model_name="old", config={}) as tmp:
        (tmp / "weights.txt").write_text("old")
    with (
        pytest.raises(RuntimeError),
        write_artifact(tmp_path / "a", vertical="v", model_name="new", config={}) as tmp,
    ):
        (tmp / "weights.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert read_manifest(tmp_path / "a")["model_name"] == "old"
    assert (tmp_path / "a" / "weights.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary folder left behind


def test_missing_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="not a verticals artifact"):
        read_manifest(tmp_path)


def test_manifest_format_and_vertical_are_checked(tmp_path):
    with write_artifact(tmp_path / "a", vertical="v", model_name="m", config={}) as tmp:
        (tmp / "w.txt").write_text("w")
    assert read_manifest(tmp_path / "a", vertical="v")["format"] == ARTIFACT_FORMAT
    with pytest.raises(ArtifactError, match="is a 'v' artifact, not a 'other' one"):
        read_manifest(tmp_path / "a", vertical="other")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    (tmp_path / "a" / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    with pytest.raises(ArtifactError, match="artifact format 1; this version of verticals reads"):
        read_manifest(tmp_path / "a")
    (tmp_path / "a" / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="not a verticals manifest"):
        read_manifest(tmp_path / "a")


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "index"
    with atomic_folder(target) as tmp:
        (tmp / "a.bin").write_text("1")
        (tmp / "b.bin").write_text("1")
    with pytest.raises(OSError), atomic_folder(target) as tmp:
        (tmp / "a.bin").write_text("2")
        raise OSError("disk full")
    assert sorted(p.name for p in target.iterdir()) == ["a.bin", "b.bin"]
    assert (target / "a.bin").read_text() == "1"
    with atomic_folder(target) as tmp:
        (tmp / "c.bin").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c.bin"]  # replaced whole, nothing merged
    assert [p.name for p in tmp_path.iterdir()] == ["index"]


def test_a_crash_between_the_two_renames_of_a_swap_is_recovered(tmp_path, monkeypatch):
    import shared.artifacts as artifacts

    target = tmp_path / "catalogue"
    with atomic_folder(target) as tmp:
        (tmp / "items.jsonl").write_text("old")
    real_rename = type(target).rename

    def killed_after_moving_the_old_aside(self, dest):
        if str(dest) == str(target):  # the second rename: the process dies before it
            raise KeyboardInterrupt
        return real_rename(self, dest)

    monkeypatch.setattr(type(target), "rename", killed_after_moving_the_old_aside)
    with pytest.raises(KeyboardInterrupt), artifacts.atomic_folder(target) as tmp:
        (tmp / "items.jsonl").write_text("new")
    monkeypatch.undo()
    assert not target.exists()  # what a restart finds: only the old folder, set aside
    assert (recover_folder(target) / "items.jsonl").read_text() == "old"
    assert recover_folder(target) == target  # nothing to do the second time


class VerticalTrainerConfig(TrainerConfig):
    epochs: int = 9
    lr: float = 3e-4


class VerticalCfg(StrictModel):
    trainer: VerticalTrainerConfig = VerticalTrainerConfig()


def test_nested_override_keeps_the_verticals_own_defaults():
    cfg = load_config(VerticalCfg, overrides=["trainer.max_steps=2"])
    assert (cfg.trainer.epochs, cfg.trainer.lr, cfg.trainer.max_steps) == (9, 3e-4, 2)


class MappingCfg(StrictModel):
    topics: dict[str, str] = {"banking": "banks", "energy": "oil and gas"}
    trainer: VerticalTrainerConfig = VerticalTrainerConfig()


def test_a_mapping_setting_is_replaced_not_merged():
    cfg = load_config(
        MappingCfg, overrides={"topics": {"rates": "central banks"}, "trainer": {"lr": 0.1}}
    )
    assert cfg.topics == {"rates": "central banks"}
    assert (cfg.trainer.epochs, cfg.trainer.lr) == (9, 0.1)
