"""Data import for the recommender: renamed columns for both tables, and the data report."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from recommender import VERTICAL
from recommender.data import collapse, load_dataset
from recommender.data_report import (
    DUPLICATE_REASON,
    REPEAT_REASON,
    UNKNOWN_REASON,
    UNSEEN_REASON,
    build_data_report,
)
from recommender.generate import write_dataset
from recommender.schemas import RecommenderConfig
from recommender.split import make_split
from shared.config import load_config
from shared.data_report import MANIFEST_KEY
from shared.errors import DataError, VerticalsError

ITEM_COLUMNS = {"item_id": "sku", "title": "name"}
EVENT_COLUMNS = {"user_id": "visitor", "item_id": "sku", "event": "action", "ts": "timestamp"}
COLUMNS = {**ITEM_COLUMNS, **EVENT_COLUMNS}


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    """The generated tiny dataset with the user's column names, 3 repeated event ids and 2
    events on an item the catalogue lacks; returns (folder, the original interactions)."""
    folder = write_dataset(tmp_path_factory.mktemp("rec_user"), n_users=40, per_subtopic=3)
    items = pd.read_csv(folder / "items.csv").rename(columns=ITEM_COLUMNS)
    events = pd.read_csv(folder / "interactions.csv")
    ghost = events.head(2).assign(item_id="ghost", event_id=["g1", "g2"])
    noisy = pd.concat([events, events.head(3), ghost], ignore_index=True)
    items.to_csv(folder / "items.csv", index=False)
    noisy.rename(columns=EVENT_COLUMNS).to_csv(folder / "interactions.csv", index=False)
    return folder, events


def _cfg(**overrides) -> RecommenderConfig:
    return load_config(RecommenderConfig, overrides={**dict(VERTICAL.smoke_overrides), **overrides})


def test_columns_map_both_tables(user_data):
    folder, events = user_data
    with pytest.raises(DataError, match=r"missing required column\(s\)"):
        load_dataset(folder, _cfg().event_weights)
    ds = load_dataset(folder, _cfg().event_weights, columns=COLUMNS)
    assert list(ds.items.columns[:2]) == ["item_id", "title"]
    assert set(ds.interactions["user_id"]) == set(events["user_id"])
    assert len(ds.interactions) == len(events)
    with pytest.raises(VerticalsError, match=r"\['visitor'\] are not columns of the data"):
        _cfg(columns={"visitor": "user_id"})


def test_report_counts_every_interaction(user_data):
    folder, events = user_data
    for protocol in ("leave_last_out", "random_holdout", "time_cutoff"):
        cfg = _cfg(columns=COLUMNS, split=protocol)
        ds = load_dataset(folder, cfg.event_weights, columns=cfg.columns)
        contacts = collapse(ds.interactions)
        report = build_data_report(cfg, ds, make_split(cfg, contacts))
        assert report.rows_read == len(events) + 5
        assert report.tables == {"items": len(ds.items), "interactions": len(events) + 5}
        assert report.dropped[DUPLICATE_REASON] == 3 and report.dropped[UNKNOWN_REASON] == 2
        assert report.dropped[REPEAT_REASON] == len(events) - len(contacts)
        assert report.rows_read - sum(report.dropped.values()) == report.rows_used
        assert (UNSEEN_REASON in report.dropped) == (
            protocol == "time_cutoff" and report.rows_used < len(contacts)
        )


def test_train_stores_and_logs_the_data_report(user_data, tmp_path, caplog):
    folder, events = user_data
    cfg = _cfg(columns=COLUMNS)
    with caplog.at_level(logging.INFO, logger="recommender.training"):
        artifact = VERTICAL.train(cfg, folder, tmp_path / "run")
    manifest = json.loads((artifact / "manifest.json").read_text())
    report = manifest[MANIFEST_KEY]
    contacts = collapse(load_dataset(folder, cfg.event_weights, columns=COLUMNS).interactions)
    per_user = contacts.groupby("user_id").size()
    assert report["rows_read"] == len(events) + 5
    assert report["rows_used"] == len(contacts)
    assert report["dropped"][DUPLICATE_REASON] == 3
    assert report["unknown_items"] == ["ghost"]
    test, val = report["splits"]["test"], report["splits"]["val"]
    assert test["rows"] == test["users"] == int((per_user >= 2).sum())  # leave-last-out
    assert val["rows"] == val["users"] == int((per_user >= 3).sum())
    assert report["splits"]["train"]["users"] == len(per_user)
    assert sum(report["classes"]["test"].values()) == test["rows"]
    assert manifest["metrics"]["test_items_held_out"] == test["rows"]
    assert any(w.startswith("validation holds out") for w in report["warnings"]) == (
        val["users"] < 30
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"dropped              3  {DUPLICATE_REASON}" in logged
    assert "users /" in logged


def test_small_heldout_sets_warn(tmp_path):
    folder = write_dataset(tmp_path / "small", n_users=10, per_subtopic=3)
    for protocol, hint in (("leave_last_out", "add users"), ("random_holdout", "holdout_fraction")):
        cfg = _cfg(split=protocol)
        ds = load_dataset(folder, cfg.event_weights)
        report = build_data_report(cfg, ds, make_split(cfg, collapse(ds.interactions)))
        test = report.splits["test"]
        [warning] = [w for w in report.warnings if w.startswith("test holds out")]
        assert f"{test['rows']} interaction(s) of {test['users']} user(s)" in warning
        assert "fewer than 30 users" in warning and hint in warning
