"""Training on a user's data folder: mapped columns and intents, a split column, the report."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from customer_service import SMOKE_OVERRIDES
from customer_service.config import CustomerServiceConfig
from customer_service.kb_data import write_demo_data
from customer_service.pair_splits import report_splits, resolve_pair_splits, split_oos
from customer_service.training import train
from shared.artifacts import read_manifest
from shared.config import load_config
from shared.data_report import DataReport
from shared.errors import VerticalsError

N_TEST, N_VAL, N_REPEATS = 20, 25, 5


def _users_folder(folder):
    """The demo bank with the user's names: `utterance`, integer `label`s, a `fold` column."""
    data = write_demo_data(folder)
    pairs = pd.read_csv(data / "pairs.csv")
    codes = {name: str(i) for i, name in enumerate(sorted(set(pairs["intent"])))}
    pairs["fold"] = ""
    pairs.loc[pairs.index[:N_TEST], "fold"] = "Test"
    pairs.loc[pairs.index[N_TEST : N_TEST + N_VAL], "fold"] = "VAL"
    repeats = pairs.iloc[100 : 100 + N_REPEATS].assign(fold="")
    pairs = pd.concat([pairs, repeats], ignore_index=True)
    pairs["intent"] = pairs["intent"].map(codes)
    pairs.rename(columns={"question": "utterance", "intent": "label"}).to_csv(
        data / "pairs.csv", index=False
    )
    return data, pairs, {code: name for name, code in codes.items()}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("cs_import")
    data, pairs, label_map = _users_folder(root / "data")
    overrides = {
        **SMOKE_OVERRIDES,
        "columns": {"question": "utterance", "intent": "label", "split": "fold"},
        "label_map": label_map,
    }
    cfg = load_config(CustomerServiceConfig, overrides=overrides)
    logger = logging.getLogger("customer_service.training")
    records: list[logging.LogRecord] = []  # caplog is function-scoped; this fixture is not
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not `.level =`: it clears the logger's level cache
    try:
        manifest = read_manifest(train(cfg, data, root / "run"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return pairs, manifest, records


def test_fixed_val_and_test_pairs_are_those_splits_alone(imported):
    pairs, manifest, _ = imported
    metrics, report = manifest["metrics"], manifest["data_report"]
    assert metrics["n_test"] == (pairs["fold"] == "Test").sum() == N_TEST  # nothing drawn
    assert metrics["n_val"] == N_VAL
    assert report["splits"]["test"] == {
        "rows": N_TEST,
        "fixed": N_TEST,
        "drawn": 0,
        "drawn_fraction": 0.0,
    }
    assert report["splits"]["val"]["drawn"] == 0


def test_mapped_intents_reach_the_report_and_the_label_map(imported):
    pairs, manifest, _ = imported
    report = manifest["data_report"]
    assert pairs["intent"].str.isdigit().all()  # the file holds codes...
    assert not any(i.isdigit() for i in manifest["label_map"])  # ...the model intent names
    assert set(report["classes"]["train"]) <= set(manifest["label_map"])
    assert sum(report["classes"]["test"].values()) == N_TEST


def test_the_report_says_how_many_duplicates_were_dropped_and_why(imported):
    pairs, manifest, _ = imported
    report = manifest["data_report"]
    repeated = report["dropped"]["repeated question (same normalised text) for the same answer"]
    assert repeated >= N_REPEATS
    assert report["rows_read"] == len(pairs) + 8  # 8 pairs come from the dialogues
    assert report["rows_used"] == report["rows_read"] - sum(
        v for k, v in report["dropped"].items() if "question" in k
    )
    assert report["tables"]["pairs.csv"] == len(pairs)
    assert report["other"]["out_of_scope"] == {"val": 105, "test": 105}


def test_small_held_out_splits_are_warned_about_in_the_log_and_the_report(imported):
    _, manifest, records = imported
    warnings = manifest["data_report"]["warnings"]
    assert warnings[0].startswith(f"validation has {N_VAL} rows (fewer than 30)")
    assert warnings[1].startswith(f"test has {N_TEST} rows (fewer than 30)")
    blocks = [r.getMessage() for r in records if r.getMessage().startswith("data report")]
    assert len(blocks) == 1 and "drawn split off" in blocks[0]
    assert sum(r.levelno == logging.WARNING for r in records) >= 2


def test_fixed_out_of_scope_splits_turn_off_their_share_of_the_rest():
    oos = pd.DataFrame({"question": [f"q{i}" for i in range(10)], "split": ["val"] * 3 + [""] * 7})
    out = split_oos(oos, seed=0)
    assert (len(out["val"]), len(out["test"])) == (3, 7)  # the rest all go to test
    both = oos.assign(split=["val", "test"] + [""] * 8)
    out = split_oos(both, seed=0)
    report = DataReport("d")
    pairs = pd.DataFrame({"question": ["a", "b"], "answer_id": ["x", "y"], "split": ""})
    pairs["intent"] = ""
    cfg = CustomerServiceConfig()
    splits = {"train": pairs, "val": pairs.iloc[:0], "test": pairs.iloc[:0]}
    report_splits(report, splits, resolve_pair_splits(pairs, cfg), out, len(both))
    assert (len(out["val"]), len(out["test"])) == (1, 1)
    assert report.dropped == {"out-of-scope questions without a split (val and test are fixed)": 8}


def test_a_column_key_must_be_a_column_of_the_data_folder():
    with pytest.raises(VerticalsError, match="columns: .*'questions'.*not columns"):
        load_config(CustomerServiceConfig, overrides=["columns.questions=utterance"])
    cfg = load_config(CustomerServiceConfig, overrides=["columns.answer=response"])
    assert cfg.columns == {"answer": "response"} and CustomerServiceConfig().label_map == {}
