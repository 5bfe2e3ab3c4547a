"""The bot's recipes: `frozen` keeps the encoder, `auto` scores both and records its choice."""

from __future__ import annotations

import json

import torch

from customer_service import SMOKE_OVERRIDES
from customer_service.config import CustomerServiceConfig
from customer_service.kb_data import write_demo_data
from customer_service.training import train
from shared.config import load_config
from shared.devices import seed_everything
from shared.models import load_model


def _config(**overrides) -> CustomerServiceConfig:
    return load_config(CustomerServiceConfig, overrides={**SMOKE_OVERRIDES, **overrides})


def _manifest(artifact) -> dict:
    return json.loads((artifact / "manifest.json").read_text())


def test_auto_scores_frozen_and_finetune_and_records_the_choice(tmp_path):
    data = write_demo_data(tmp_path / "data")
    artifact = train(_config(recipe="auto"), data, tmp_path / "run")
    recipe = _manifest(artifact)["recipe"]
    assert set(recipe["scores"]) == {"frozen", "finetune"} and recipe["metric"] == "accuracy"
    assert recipe["method"] == "cv"  # 51 validation questions over 55 answers: too few
    assert recipe["folds"] >= 2 and len(recipe["fold_scores"]["frozen"]) == recipe["folds"]
    assert recipe["recipe"] == max(recipe["scores"], key=recipe["scores"].get)
    assert all(0.0 <= s <= 1.0 for s in recipe["scores"].values())


def test_frozen_keeps_the_encoder_as_loaded_and_fits_the_intent_head(tmp_path):
    data = write_demo_data(tmp_path / "data")
    artifact = train(_config(recipe="frozen"), data, tmp_path / "run")
    manifest = _manifest(artifact)
    assert (manifest["recipe"]["recipe"], manifest["recipe"]["method"]) == ("frozen", "fixed")
    stored = load_model(str(artifact / "encoder"), "sentence-encoder").state_dict()
    from safetensors.torch import load_file

    head = load_file(artifact / "head.safetensors")
    assert head["weight"].abs().sum() > 0  # the logistic regression, not a zero head
    seed_everything(0)  # what training does before it builds the (random, seeded) encoder
    fresh = load_model(SMOKE_OVERRIDES["model"], "sentence-encoder").state_dict()
    assert all(torch.equal(stored[k], fresh[k]) for k in stored)  # untouched by training
    tuned = train(_config(recipe="finetune"), data, tmp_path / "run3")
    third = load_model(str(tuned / "encoder"), "sentence-encoder").state_dict()
    assert any(not torch.equal(stored[k], third[k]) for k in stored)  # finetune does move it
