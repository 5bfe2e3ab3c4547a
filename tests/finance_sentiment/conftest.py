"""Fixtures of the finance_sentiment tests: a tiny trained artifact and a scored-store helper."""

from __future__ import annotations

import pandas as pd
import pytest

from shared.config import load_config


@pytest.fixture(scope="session")
def fs_artifact(tmp_path_factory):
    """A finance_sentiment artifact trained for two steps with the random 2-layer BERT."""
    import finance_sentiment as fs

    root = tmp_path_factory.mktemp("fs_artifact")
    data = fs.example_data(root / "data")
    cfg = load_config(fs.FinanceConfig, overrides=dict(fs.VERTICAL.smoke_overrides))
    return fs.train(cfg, data, root / "run")


@pytest.fixture
def add_scored():
    """`add_scored(store, rows)`: see :func:`store_scored`."""
    return store_scored


def store_scored(store, rows):
    """Stores rows `(id, ts, entity, topic, label)` as already-scored items (labels chosen by the test)."""
    items = [
        {
            "id": i,
            "ts": pd.Timestamp(ts, tz="UTC"),
            "source": "test",
            "entity": entity,
            "text": f"text {i}",
        }
        for i, ts, entity, _, _ in rows
    ]
    inserted, _ = store.add_items(items)
    scores = {"negative": -0.8, "neutral": 0.0, "positive": 0.8}
    results = [
        {
            "label": label,
            "score": scores[label],
            "probs": {
                "negative": float(label == "negative"),
                "neutral": float(label == "neutral"),
                "positive": float(label == "positive"),
            },
            "topic": topic,
        }
        for _, _, _, topic, label in rows
    ]
    store.set_scores([r[0] for r in rows], results)
    return [{**item, "topic": row[3]} for item, row in zip(inserted, rows, strict=True)]
