"""Users' own column names and labels map onto a schema; empty files get a clear error."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from shared.data import Column, TableSchema, load_table, validate_table
from shared.data_import import check_column_map
from shared.errors import DataError

SCHEMA = TableSchema(
    "labelled",
    (
        Column("text"),
        Column("sentiment", choices=("negative", "neutral", "positive")),
        Column("split", required=False, nonempty=False, choices=("", "train", "val", "test")),
    ),
    label="sentiment",
)
CODES = {"0": "negative", "1": "neutral", "2": "positive"}


def test_columns_map_the_users_names_onto_the_schemas(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("headline,label,source\nShares plunge,negative,x\nShares soar,positive,y\n")
    out = load_table(path, SCHEMA, columns={"text": "headline", "sentiment": "label"})
    assert out["text"].tolist() == ["Shares plunge", "Shares soar"]
    assert out["sentiment"].tolist() == ["negative", "positive"]
    assert "headline" not in out.columns and "source" in out.columns


def test_the_mapped_column_wins_over_a_column_of_the_schemas_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,headline,sentiment\nid-1,Shares plunge,negative\n")
    out = load_table(path, SCHEMA, columns={"text": "headline"})
    assert out["text"].tolist() == ["Shares plunge"] and list(out.columns).count("text") == 1


def test_a_missing_mapped_column_names_it_and_the_columns_the_file_has(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("title,label\nShares plunge,negative\n")
    with pytest.raises(DataError) as err:
        load_table(path, SCHEMA, columns={"text": "headline", "sentiment": "label"})
    message = str(err.value)
    assert str(path) in message and "'headline'" in message and "columns.text=headline" in message
    assert "['title', 'label']" in message


def test_a_column_map_key_must_be_a_schema_column():
    assert check_column_map({"text": "headline"}, [SCHEMA]) == {"text": "headline"}
    with pytest.raises(ValueError, match=r"\['txt'\] are not columns.*'sentiment'"):
        check_column_map({"txt": "headline"}, [SCHEMA])


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_integer_labels_are_mapped_through_label_map(tmp_path, suffix):
    df = pd.DataFrame({"text": ["a", "b", "c", "d"], "sentiment": [0, 1, 2, 0]})
    path = tmp_path / f"t{suffix}"
    {
        ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
        ".parquet": lambda: df.to_parquet(path),
        ".csv": lambda: df.to_csv(path, index=False),
    }[suffix]()
    out = load_table(path, SCHEMA, label_map=CODES)
    assert out["sentiment"].tolist() == ["negative", "neutral", "positive", "negative"]


def test_float_integer_labels_of_parquet_match_their_integer_keys(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"text": ["a", "b"], "sentiment": [2.0, 0.0]}).to_parquet(path)
    assert load_table(path, SCHEMA, label_map=CODES)["sentiment"].tolist() == [
        "positive",
        "negative",
    ]


def test_labels_and_splits_match_their_choices_ignoring_case_and_spaces():
    df = pd.DataFrame(
        {
            "text": ["a", "b", "c", "d"],
            "sentiment": ["Negative", "NEGATIVE ", " neutral", "Positive"],
            "split": ["TEST", " Val", "", "train"],
        }
    )
    out = validate_table(df, SCHEMA)
    assert out["sentiment"].tolist() == ["negative", "negative", "neutral", "positive"]
    assert out["split"].tolist() == ["test", "val", "", "train"]


def test_a_label_outside_the_choices_after_mapping_names_it_and_label_map():
    df = pd.DataFrame({"text": ["a", "b", "c"], "sentiment": ["0", "3", "mixed"]})
    with pytest.raises(DataError) as err:
        validate_table(df, SCHEMA, source="t.csv", label_map={"0": "negative"})
    message = str(err.value)
    assert "t.csv: column 'sentiment' has labels ['3', 'mixed'] outside" in message
    assert "set label_map" in message and "label_map.3=" in message
    assert "'0'" not in message.split("\n")[1]  # the mapped label is fine


def test_label_map_keys_match_ignoring_case():
    df = pd.DataFrame({"text": ["a", "b"], "sentiment": ["POS", "neg"]})
    out = validate_table(df, SCHEMA, label_map={"pos": "positive", "NEG": "negative"})
    assert out["sentiment"].tolist() == ["positive", "negative"]


@pytest.mark.parametrize(
    ("name", "content"),
    [("head.csv", "text,sentiment\n"), ("empty.csv", ""), ("empty.jsonl", "\n")],
)
def test_an_empty_or_header_only_file_has_no_rows(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=rf"{path}: has no rows"):
        load_table(path, SCHEMA)


def test_jsonl_records_with_mapped_names_load(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"body": "Shares soar", "y": 2}) + "\n")
    out = load_table(path, SCHEMA, columns={"text": "body", "sentiment": "y"}, label_map=CODES)
    assert out.loc[0, ["text", "sentiment"]].tolist() == ["Shares soar", "positive"]
