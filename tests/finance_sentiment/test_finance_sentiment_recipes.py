"""The finance recipes: frozen keeps the body, auto records its choice, finetune is unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import finance_sentiment as fs
from finance_sentiment.recipes import fit_by_recipe
from finance_sentiment.training import fit_sentiment
from shared.artifacts import read_manifest
from shared.config import load_config
from shared.devices import seed_everything
from shared.models import load_model
from shared.registry import get_vertical, load_runtime

TEXTS = ["Norvale Bank shares plunge 12% after profit warning", "The board meets on Tuesday"]


def _cfg(**overrides):
    return load_config(fs.FinanceConfig, overrides={**fs.VERTICAL.smoke_overrides, **overrides})


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return fs.example_data(tmp_path_factory.mktemp("fs_recipes") / "data")


def _body_state(folder) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(folder), trust_remote_code=True)
    return {k: v.clone() for k, v in model.backbone.state_dict().items()}


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_keeps_the_body_and_loads_through_the_runtime_and_auto_classes(example, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    artifact = fs.train(_cfg(recipe="frozen"), example, tmp_path / "run")
    _, base = load_model("random:bert-tiny", "text-backbone")
    assert _same_weights(_body_state(artifact / "model"), base.state_dict())
    manifest = read_manifest(artifact)
    assert manifest["recipe"]["recipe"] == "frozen" and manifest["recipe"]["method"] == "fixed"
    assert manifest["training"] is None  # no loop ran

    served = load_runtime(get_vertical("finance_sentiment"), artifact).predict(
        [{"text": t} for t in TEXTS]
    )
    folder = str(artifact / "model")
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    enc = AutoTokenizer.from_pretrained(folder)(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        probs = model.eval()(**enc).logits.softmax(-1).numpy()
    expected = np.array([[r["probs"][model.config.id2label[i]] for i in range(3)] for r in served])
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert not np.allclose(probs, 1 / 3, atol=1e-3)  # the fitted head, not a blank one


def test_auto_records_every_candidate_score_and_the_method(example, tmp_path):
    artifact = fs.train(_cfg(recipe="auto"), example, tmp_path / "run")
    record = read_manifest(artifact)["recipe"]
    assert set(record["scores"]) == {"frozen", "fewshot", "finetune"}
    assert record["method"] == "cv" and record["folds"] == 5  # 12 validation rows: small
    assert all(len(v) == 5 for v in record["fold_scores"].values())
    assert record["scores"][record["recipe"]] == max(record["scores"].values())
    assert record["train_rows"] == read_manifest(artifact)["metrics"]["train_rows"]


def test_auto_skips_fewshot_above_its_row_limit_and_says_why(example, tmp_path):
    artifact = fs.train(
        _cfg(recipe="auto", fewshot={"auto_max_train_rows": 10}), example, tmp_path / "run"
    )
    record = read_manifest(artifact)["recipe"]
    assert set(record["scores"]) == {"frozen", "finetune"}
    assert "auto_max_train_rows" in record["skipped"]["fewshot"]


def test_fewshot_tunes_the_body_through_the_shared_loop(example, tmp_path):
    artifact = fs.train(_cfg(recipe="fewshot", fewshot={"lr": 1e-2}), example, tmp_path / "run")
    _, base = load_model("random:bert-tiny", "text-backbone")
    assert not _same_weights(_body_state(artifact / "model"), base.state_dict())
    manifest = read_manifest(artifact)
    assert manifest["training"]["monitor"] == "train_loss"  # the contrastive run's record
    assert manifest["recipe"]["recipe"] == "fewshot"


def test_recipe_finetune_is_the_fine_tune_of_before(tmp_path):
    cfg = _cfg(recipe="finetune")
    rows = [
        (f"Company {i} {'beats' if i % 2 else 'misses'} forecasts", i % 3, -100) for i in range(24)
    ]
    seed_everything(0)
    before, *_ = fit_sentiment(cfg, rows, rows[:6], 0, tmp_path / "a")
    seed_everything(0)
    task, _, _, result, choice = fit_by_recipe(cfg, rows, rows[:6], 0, tmp_path / "b")
    assert _same_weights(before.state_dict(), task.state_dict())
    assert result.monitor == "val_macro_f1" and choice.method == "fixed"
