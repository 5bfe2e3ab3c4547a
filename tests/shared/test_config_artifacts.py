"""Configs reject typos; artifacts are atomic, self-describing and never unpickled."""

from __future__ import annotations

import pytest
import torch

from shared.artifacts import load_weights, read_manifest, save_weights, write_artifact
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
        metrics={"acc": 0.5},
        label_map=["x", "y"],
        data_fingerprint="sha256:abc",
    ) as tmp:
        save_weights(tmp / "model.safetensors", {"w": torch.ones(2, 2)})
    manifest = read_manifest(tmp_path / "a")
    assert manifest["metrics"] == {"acc": 0.5} and manifest["label_map"] == ["x", "y"]
    assert manifest["files"] == ["model.safetensors"] and "torch" in manifest["versions"]
    assert "| acc | 0.5000 |" in (tmp_path / "a" / "README.md").read_text()
    assert torch.equal(load_weights(tmp_path / "a" / "model.safetensors")["w"], torch.ones(2, 2))


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


class VerticalCfg(StrictModel):
    trainer: TrainerConfig = TrainerConfig(epochs=9, lr=3e-4)


def test_nested_override_keeps_the_verticals_own_defaults():
    cfg = load_config(VerticalCfg, overrides=["trainer.max_steps=2"])
    assert (cfg.trainer.epochs, cfg.trainer.lr, cfg.trainer.max_steps) == (9, 3e-4, 2)


class MappingCfg(StrictModel):
    topics: dict[str, str] = {"banking": "banks", "energy": "oil and gas"}
    trainer: TrainerConfig = TrainerConfig(epochs=9)


def test_a_mapping_setting_is_replaced_not_merged():
    cfg = load_config(
        MappingCfg, overrides={"topics": {"rates": "central banks"}, "trainer": {"lr": 0.1}}
    )
    assert cfg.topics == {"rates": "central banks"}
    assert (cfg.trainer.epochs, cfg.trainer.lr) == (9, 0.1)
