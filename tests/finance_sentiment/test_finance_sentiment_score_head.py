"""The score head: fitted on gold scores when the table has them, kept only when it helps."""

from __future__ import annotations

import numpy as np
import pytest

import finance_sentiment as fs
from finance_sentiment.evaluation import evaluate
from finance_sentiment.generate import make_labelled
from finance_sentiment.score_head import ScoreHead, fit_score_head, raw_scores, score_metrics
from finance_sentiment.settings import FinanceSettings
from shared.artifacts import load_json, read_manifest
from shared.config import load_config
from shared.errors import DataError


def _probs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet([1.0, 1.0, 1.0], size=n)


def test_the_head_learns_a_gold_scale_that_the_raw_reading_misses():
    probs = _probs(200)
    gold = 0.3 * raw_scores(probs) + 0.1 + np.random.default_rng(1).normal(0, 0.02, 200)
    head, record = fit_score_head(probs, gold)
    assert head is not None and record["cv_mse"] < record["raw_mse"]
    fresh = _probs(50, seed=2)
    expected = 0.3 * raw_scores(fresh) + 0.1
    assert np.abs(head.predict(fresh) - expected).max() < 0.03
    assert score_metrics(head.predict(fresh), expected)["score_r2"] > 0.95
    assert ScoreHead.from_dict(head.as_dict()).predict(fresh) == pytest.approx(head.predict(fresh))


def test_the_head_is_refused_when_the_raw_reading_is_already_the_gold_score():
    probs = _probs(100)
    head, record = fit_score_head(probs, raw_scores(probs))
    assert head is None and "not below the raw" in record["reason"]


def test_too_few_scored_rows_fit_nothing_and_say_how_many():
    probs = _probs(30)
    gold = np.full(30, np.nan)
    gold[:5] = 0.2
    head, record = fit_score_head(probs, gold)
    assert head is None and record["rows"] == 5 and "fewer than 20" in record["reason"]


def test_score_metrics_ignore_rows_without_a_gold_score():
    pred = np.array([0.5, -0.5, 0.0, 0.9])
    gold = np.array([0.5, -0.5, np.nan, np.nan])
    metrics = score_metrics(pred, gold)
    assert metrics["score_mse"] == 0.0 and metrics["score_r2"] == 1.0
    assert metrics["score_sign_accuracy"] == 1.0


def _scored_table(folder, offset: float = 0.4):
    """The generated set with a gold score shifted by `offset`, far from P(pos) - P(neg)."""
    df = make_labelled(n_per_template=3, seed=0)
    base = df["sentiment"].map({"negative": -0.3, "neutral": 0.0, "positive": 0.3})
    noise = np.random.default_rng(0).normal(0, 0.05, len(df))
    df["score"] = np.clip(base + offset + noise, -1, 1).round(3)
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "labelled.csv", index=False)
    return folder / "labelled.csv"


@pytest.fixture(scope="module")
def scored_artifact(tmp_path_factory):
    root = tmp_path_factory.mktemp("scored")
    data = _scored_table(root / "data")
    overrides = {**fs.VERTICAL.smoke_overrides, "val_fraction": 0.3}
    cfg = load_config(fs.FinanceConfig, overrides=overrides)
    return fs.train(cfg, data, root / "run"), data


def test_training_on_scored_rows_writes_a_kept_head_and_scores_with_it(scored_artifact, tmp_path):
    artifact, data = scored_artifact
    manifest, meta = read_manifest(artifact), load_json(artifact / "finance.json")
    assert manifest["score_head"]["rows"] >= 20 and "reason" not in manifest["score_head"]
    assert meta["score_head"]["fitted_on"] == "val" and meta["score"] == "score head"
    metrics = manifest["metrics"]
    assert metrics["test_score_mse"] < metrics["test_score_mse_raw"]
    runtime = fs.VERTICAL.load(artifact, FinanceSettings(device="cpu", data_dir=tmp_path))
    try:
        result = runtime.predict([{"text": "Norvale Bank cuts outlook"}])[0]
        probs = np.array([[result["probs"][k] for k in ("negative", "neutral", "positive")]])
        head = ScoreHead.from_dict(meta["score_head"])
        assert result["score"] == pytest.approx(float(head.predict(probs)[0]), abs=1e-6)
        assert result["score"] != pytest.approx(float(raw_scores(probs)[0]), abs=1e-3)
        report = evaluate(runtime, data)
        assert {"score_mse", "score_r2", "score_pearson"} <= set(report.metrics)
    finally:
        runtime.close()


def test_a_table_without_scores_keeps_the_raw_reading(fs_artifact):
    meta = load_json(fs_artifact / "finance.json")
    assert meta["score_head"] is None and meta["score"] == "P(positive) - P(negative)"
    assert "score_head" not in read_manifest(fs_artifact)


@pytest.mark.parametrize("bad", ["1.5", "inf", "high"])
def test_a_score_outside_the_scale_is_an_error_naming_the_column(tmp_path, bad):
    df = make_labelled(n_per_template=1, seed=0).head(10).assign(score="0.1")
    df.loc[3, "score"] = bad
    df.to_csv(tmp_path / "labelled.csv", index=False)
    cfg = load_config(fs.FinanceConfig, overrides=dict(fs.VERTICAL.smoke_overrides))
    with pytest.raises(DataError, match="score") as error:
        fs.train(cfg, tmp_path / "labelled.csv", tmp_path / "run")
    assert "row 4" in str(error.value)
