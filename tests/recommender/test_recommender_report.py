"""`verticals evaluate recommender`: leave-last-out figures, the at-K plots and the missed users."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from recommender import VERTICAL
from recommender.evaluate import build_report
from recommender.pipeline import EvalSet, evaluate_model
from recommender.ranked_lists import RankedLists
from shared.cli import app
from shared.registry import load_runtime
from shared.settings import ServeSettings

runner = CliRunner()


def _png(path):
    with Image.open(path) as image:
        image.verify()
        return image.format


def test_report_figures_and_misses_follow_the_ranks():
    ids = [f"i{n}" for n in range(60)]
    es = EvalSet(
        users=["a", "b", "c", "d"],
        hist_rows=[np.array([1]), np.array([2, 3]), np.array([4]), np.array([5])],
        hist_weights=[np.ones(1), np.ones(2), np.ones(1), np.ones(1)],
        targets=np.array([10, 11, 12, 13]),
    )
    top = np.array([[20, 21, 22], [30, 31, 32], [40, 41, 42], [50, 51, -1]])
    ranks = np.array([1.0, 4.0, 11.0, 30.0])
    lists = {"retrieval": RankedLists(ranks, top, np.full((4, 3), 0.5), 0.2)}
    report = build_report(lists, es, ids, titles=[f"T{n}" for n in range(60)])
    m = report.metrics
    assert (m["n_users"], m["n_items"], m["n_misses"]) == (4, 60, 2)
    assert m["retrieval_recall_at_1"] == 0.25 and m["retrieval_recall_at_5"] == 0.5
    assert m["retrieval_recall_at_10"] == 0.5 and m["retrieval_recall_at_50"] == 1.0
    assert m["retrieval_mrr"] == pytest.approx(np.mean(1 / ranks))
    assert m["retrieval_ndcg_at_5"] == pytest.approx((1 + 1 / np.log2(5)) / 4)
    assert report.primary == "retrieval_recall_at_10" and set(report.plots) == {
        "recall_at_k",
        "ndcg_at_k",
    }
    assert [e["input"] for e in report.errors] == ["d", "c"]  # worst first
    worst = report.errors[0]
    assert (worst["expected"], worst["predicted"], worst["rank"]) == ("i13", "i50 i51", 30)
    assert worst["expected_title"] == "T13" and worst["confidence"] == 0.5
    assert "leave-last-out" in report.descriptions["n_users"]
    assert "every item" in report.descriptions["n_items"]


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec_report")
    artifact = trained("recommender")
    data = VERTICAL.example_data(tmp / "data")
    out = tmp / "report"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "recommender",
            "--artifact",
            str(artifact),
            "--data",
            str(data),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    return artifact, data, out, result.stdout  # the table (progress bars go to stderr)


def test_cli_evaluate_writes_the_ranking_report_folder(evaluated):
    _, _, out, output = evaluated
    payload = json.loads((out / "metrics.json").read_text())
    m = payload["metrics"]
    assert payload["primary"] == output.split()[0] and payload["primary"].endswith("recall_at_10")
    assert isinstance(m["n_users"], int) and m["n_users"] > 0
    assert f"n_users {m['n_users']} " in " ".join(output.split())  # printed as an integer
    assert "leave-last-out" in output and "every item in the artifact's index" in output
    for k in (1, 5, 10, 20):
        assert 0.0 <= m[f"retrieval_recall_at_{k}"] <= 1.0
    recalls = [m[f"retrieval_recall_at_{k}"] for k in (1, 5, 10, 20)]
    assert recalls == sorted(recalls)
    errors = pd.read_csv(out / "errors.csv", dtype={"input": str})
    assert list(errors.columns[:4]) == ["input", "expected", "predicted", "confidence"]
    assert len(errors) == m["n_misses"] and (errors["rank"] > 10).all()
    assert errors["predicted"].str.split().map(len).le(3).all()
    for name in ("recall_at_k.png", "ndcg_at_k.png"):
        assert _png(out / name) == "PNG"
    assert not (out / "per_class.csv").exists()  # a ranking has no classes


def test_report_figures_are_those_of_the_training_time_evaluation(evaluated):
    artifact, data, out, _ = evaluated
    from recommender.data import collapse, load_dataset
    from recommender.evaluate import catalogue_stats
    from recommender.pipeline import eval_set, user_vectors
    from recommender.split import leave_last_out

    runtime = load_runtime(VERTICAL, artifact, ServeSettings(device="cpu"))
    cfg = runtime.cfg
    ds = load_dataset(data, cfg.event_weights, cfg.on_unknown_items)
    split = leave_last_out(collapse(ds.interactions))
    history = pd.concat([split.train, split.val], ignore_index=True)
    es = eval_set(history, split.test, runtime.index.row_of, cfg.max_history)
    stats = catalogue_stats(runtime, history)
    emb = runtime.index.emb
    expected = evaluate_model(
        user_vectors(runtime.tower, emb, es, cfg.max_history),
        emb,
        es,
        runtime.ranker,
        stats,
        cfg.candidates,
        extra=cfg.extra_candidates,
    )
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert expected and {k: m[k] for k in expected} == pytest.approx(expected)
