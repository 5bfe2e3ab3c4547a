"""The three evaluation protocols: no leakage, the fraction and seed kept, and reachable from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recommender import VERTICAL
from recommender.schemas import RecommenderConfig, RecTrainerConfig
from recommender.split import make_split, random_holdout, time_cutoff
from recommender.training import bounded_trainer
from shared.cli import app
from shared.config import load_config
from shared.errors import VerticalsError

runner = CliRunner()


def _table(sizes: dict[str, int]) -> pd.DataFrame:
    """Collapsed interactions: user `u` takes `sizes[u]` items, one a day, users interleaved."""
    rows = []
    for n, (user, size) in enumerate(sizes.items()):
        for j in range(size):
            ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=j, hours=n)
            rows.append({"user_id": user, "item_id": f"{user}-{j}", "ts": ts, "weight": 1.0})
    return pd.DataFrame(rows)


SIZES = {"a": 8, "b": 4, "c": 2, "d": 1, "e": 12}


def _pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"], frame["item_id"], strict=True))


@pytest.mark.parametrize("protocol", ["leave_last_out", "time_cutoff", "random_holdout"])
def test_splits_partition_the_interactions(protocol):
    df = _table(SIZES)
    split = make_split(RecommenderConfig(split=protocol), df)
    parts = [_pairs(split.train), _pairs(split.val), _pairs(split.test)]
    assert sum(map(len, parts)) == len(df) and set().union(*parts) == _pairs(df)
    assert split.test["user_id"].isin(split.train["user_id"]).all()  # every test user has history


@pytest.mark.parametrize("protocol", ["leave_last_out", "time_cutoff"])
def test_time_protocols_never_train_on_the_future(protocol):
    split = make_split(RecommenderConfig(split=protocol), _table(SIZES))
    last_train = split.train.groupby("user_id")["ts"].max()
    for held in (split.val, split.test):
        assert len(held)
        assert (held["ts"].to_numpy() > last_train.reindex(held["user_id"]).to_numpy()).all()
    last_val = split.val.groupby("user_id")["ts"].max()
    test_users = split.test[split.test["user_id"].isin(last_val.index)]
    assert (test_users["ts"].to_numpy() > last_val.reindex(test_users["user_id"]).to_numpy()).all()


def test_time_cutoff_holds_every_later_item_of_known_users():
    df = _table(SIZES)
    cutoff = pd.Timestamp("2026-01-05", tz="UTC")
    split = time_cutoff(df, cutoff)
    assert (split.train["ts"] < cutoff).all() and (split.test["ts"] >= cutoff).all()
    # several held-out items per user: a has days 4..7 after the cutoff, e days 4..11
    assert split.test.groupby("user_id").size().to_dict() == {"a": 4, "e": 8}
    cfg = RecommenderConfig(split="time_cutoff", cutoff="2026-01-05")
    assert _pairs(make_split(cfg, df).test) == _pairs(split.test)


def test_random_holdout_keeps_the_fraction_per_user_and_the_seed():
    df = _table(SIZES)
    split = random_holdout(df, fraction=0.25, seed=3)
    test = split.test.groupby("user_id").size().to_dict()
    # rint(0.25 n), at least one, and one left: a 8 -> 2, b 4 -> 1, c 2 -> 1, d 1 -> 0, e 12 -> 3
    assert test == {"a": 2, "b": 1, "c": 1, "e": 3}
    val = split.val.groupby("user_id").size().to_dict()
    assert val == {"a": 2, "b": 1, "e": 2}  # the same share of what is left (6, 3, 1, 9)
    again = random_holdout(df, fraction=0.25, seed=3)
    assert _pairs(again.test) == _pairs(split.test) and _pairs(again.val) == _pairs(split.val)
    draws = {frozenset(_pairs(random_holdout(df, 0.25, seed=s).test)) for s in range(5)}
    assert len(draws) > 1  # the seed changes the draw
    half = random_holdout(df, fraction=0.5, seed=3).test.groupby("user_id").size()
    assert half.to_dict() == {"a": 4, "b": 2, "c": 1, "e": 6}


def test_split_options_are_config_fields():
    cfg = load_config(
        RecommenderConfig,
        overrides=["split=time_cutoff", "cutoff=1767571200", "holdout_fraction=0.3"],
    )
    assert cfg.cutoff_time() == pd.Timestamp("2026-01-05", tz="UTC")  # epoch seconds
    assert load_config(RecommenderConfig, overrides=["cutoff=2026-01-05"]).cutoff == "2026-01-05"
    with pytest.raises(VerticalsError, match="split"):
        load_config(RecommenderConfig, overrides=["split=leave_one_in"])
    with pytest.raises(VerticalsError, match="cutoff"):
        load_config(RecommenderConfig, overrides=["cutoff=yesterday"])
    with pytest.raises(VerticalsError, match="holdout_fraction"):
        load_config(RecommenderConfig, overrides=["holdout_fraction=1.5"])


def test_default_step_budget_is_bounded_by_the_data():
    trainer = RecTrainerConfig()
    assert trainer.max_steps is None and trainer.step_budget == 300
    assert bounded_trainer(trainer, 1000).max_steps == 32  # one epoch of ceil(1000 / 32)
    assert bounded_trainer(trainer, 100_000).max_steps == 300  # 3,125 in an epoch: the budget
    two = RecTrainerConfig(epochs=2, grad_accum=2, step_budget=1000)
    assert bounded_trainer(two, 1000).max_steps == 32  # 16 steps an epoch, two epochs
    assert bounded_trainer(RecTrainerConfig(max_steps=7), 100_000).max_steps == 7  # as given


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """`verticals train` under random_holdout and time_cutoff, then `verticals evaluate`."""
    tmp = tmp_path_factory.mktemp("protocols")
    data = VERTICAL.example_data(tmp / "data")
    smoke = ["model=random:bert-tiny", "max_seq_length=32", "trainer.batch_size=8"]
    smoke += ["trainer.progress=false", "trainer.device=cpu", "trainer.step_budget=2"]
    runs = {}
    for protocol in ("random_holdout", "time_cutoff"):
        out = tmp / protocol
        result = runner.invoke(
            app,
            ["train", "recommender", "--data", str(data), "--out", str(out)]
            + [f"split={protocol}", "split_seed=5", *smoke],
        )
        assert result.exit_code == 0, result.output
        report = tmp / f"report-{protocol}"
        evaluated = runner.invoke(
            app,
            ["evaluate", "recommender", "--artifact", str(out / "artifact"), "--data", str(data)]
            + ["--out", str(report), "--device", "cpu"],
        )
        assert evaluated.exit_code == 0, evaluated.output
        runs[protocol] = (out / "artifact", report, evaluated.stdout)
    return runs


@pytest.mark.parametrize(
    ("protocol", "words"),
    [("random_holdout", "random holdout: 25%"), ("time_cutoff", "time cutoff at")],
)
def test_cli_trains_and_evaluates_under_the_configured_protocol(cli_runs, protocol, words):
    artifact, report, output = cli_runs[protocol]
    manifest = json.loads((artifact / "manifest.json").read_text())
    config = manifest["config"]
    assert (config["split"], config["split_seed"]) == (protocol, 5)
    assert config["trainer"]["max_steps"] == 2  # the budget, recorded as run
    assert manifest["training"]["steps"] == 2
    assert words in manifest["metrics"]["split"]
    m = json.loads((report / "metrics.json").read_text())["metrics"]
    assert m["n_held_out"] > m["n_users"] > 0  # several held-out items per user
    # on the training data, evaluate holds out exactly what training's test held out
    trained = manifest["metrics"]
    assert (m["n_users"], m["n_held_out"]) == (
        trained["test_users"],
        trained["test_items_held_out"],
    )
    assert m["retrieval_ndcg_at_10"] == pytest.approx(trained["retrieval_ndcg_at_10"])
    for key in ("precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10", "hit_rate_at_10"):
        assert 0.0 <= m[f"retrieval_{key}"] <= 1.0
    assert m["retrieval_recall_at_10"] <= m["retrieval_hit_rate_at_10"]
    assert "cold_retrieval_recall_at_10" in m or m.get("cold_retrieval_users") == 0
    assert words in " ".join(output.split())  # the report says which protocol
    assert np.isfinite(m["retrieval_mrr"])
