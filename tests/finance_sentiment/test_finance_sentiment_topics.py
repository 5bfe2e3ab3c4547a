"""Topics: zero-shot assignment when the labelled data has no topic column."""

from __future__ import annotations

import pandas as pd
import pytest

import finance_sentiment as fs
from finance_sentiment.config import DEFAULT_TOPICS
from finance_sentiment.settings import FinanceSettings
from finance_sentiment.topics import ZeroShotTopics
from shared.artifacts import load_json
from shared.config import load_config
from shared.registry import load_runtime


def test_without_topic_labels_the_artifact_uses_zero_shot_topics_from_the_config(tmp_path):
    data = fs.example_data(tmp_path / "d")
    pd.read_csv(data).drop(columns=["topic"]).to_csv(data, index=False)
    overrides = {
        **fs.VERTICAL.smoke_overrides,
        "topics": {"rates": "central bank rates", "oil": "crude oil"},
    }
    artifact = fs.train(load_config(fs.FinanceConfig, overrides=overrides), data, tmp_path / "run")
    meta = load_json(artifact / "finance.json")
    assert meta["topic_mode"] == "zero-shot" and meta["topics"] == ["rates", "oil"]
    runtime = load_runtime(
        fs.VERTICAL, artifact, FinanceSettings(device="cpu", finance_db=tmp_path / "m.db")
    )
    try:
        # A text equal to a description's prompt embeds identically, even with a random encoder.
        out = runtime.predict([{"text": "oil: crude oil"}, {"text": "rates: central bank rates"}])
    finally:
        runtime.close()
    assert [o["topic"] for o in out] == ["oil", "rates"]


@pytest.mark.slow
def test_zero_shot_with_the_real_minilm_assigns_plain_topics():
    topics = ZeroShotTopics("minilm", DEFAULT_TOPICS)
    texts = [
        "Crude prices hit a two-year high as refiners ramp up output",
        "The lender raised its mortgage rates after the central bank decision",
        "Regulators approved the company's new cancer treatment after a phase 3 trial",
        "Supermarket chain reports weaker store sales over the holidays",
        "Chipmaker ships its new processor to cloud data centres",
    ]
    assert topics.assign(texts) == ["energy", "banking", "pharma", "retail", "technology"]
