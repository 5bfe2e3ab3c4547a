"""Generated data, row-by-row validation and stream file reading."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from finance_sentiment.generate import COMPANIES, make_labelled, make_stream, write_demo_data
from finance_sentiment.ingest import read_stream_file, validate_file_records, validate_rows
from finance_sentiment.schemas import LABELLED
from finance_sentiment.training import load_labelled
from shared.data import validate_table
from shared.errors import DataError


def test_labelled_set_is_balanced_valid_and_grouped_by_template():
    df = make_labelled(n_per_template=3, seed=1)
    validate_table(df, LABELLED)
    assert set(df["sentiment"]) == {"negative", "neutral", "positive"}
    assert set(df["topic"]) == set(COMPANIES)
    assert df.groupby("group")["sentiment"].nunique().max() == 1  # a group is one template


def test_stream_injects_a_negative_event_on_the_known_day():
    stream, events = make_stream(days=30, seed=0)
    event = events[0]
    start = pd.Timestamp(event.start)
    ts = pd.to_datetime(stream["ts"], utc=True)
    assert ts.min() >= pd.Timestamp("2026-10-01", tz="UTC") and ts.max() < pd.Timestamp(
        "2026-10-31", tz="UTC"
    )
    during = stream[
        (ts >= start)
        & (ts < start + pd.Timedelta(hours=event.hours))
        & (stream.entity == event.entity)
    ]
    before = stream[(ts < start) & (stream.entity == event.entity)]
    assert (
        (during.true_sentiment == "negative").mean()
        > 0.7
        > 0.4
        > (before.true_sentiment == "negative").mean()
    )
    assert len(during) / event.hours > 3 * len(before) / (start - ts.min()).total_seconds() * 3600
    assert stream["id"].is_unique


def test_validate_rows_rejects_bad_rows_and_keeps_the_rest():
    good, rejected = validate_rows(
        [
            {"id": "a", "ts": "2026-10-01T10:00:00Z", "text": "Fine text", "source": "news"},
            {"id": "b", "ts": "2026-10-01 11:00", "text": "   "},
            {"id": "c", "ts": "yesterday-ish", "text": "Has text"},
            {"id": "", "ts": "2026-10-01", "text": "No id"},
            {
                "id": "e",
                "ts": "2026-10-01T12:00:00+02:00",
                "text": "Offset time",
                "entity": "Norvale Bank",
            },
        ]
    )
    assert [g["id"] for g in good] == ["a", "e"]
    assert (
        good[1]["ts"] == pd.Timestamp("2026-10-01T10:00:00Z")
        and good[1]["entity"] == "Norvale Bank"
    )
    reasons = {r["row"]: r["reason"] for r in rejected}
    assert reasons[2] == "empty text"
    assert "bad timestamp 'yesterday-ish'" in reasons[3] and "ISO 8601" in reasons[3]
    assert reasons[4] == "empty id"


def test_csv_with_undecodable_bytes_rejects_only_that_row(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(
        b"id,ts,source,text\n1,2026-10-01T00:00:00Z,news,Good one\n"
        b"2,2026-10-01T01:00:00Z,news,Bad \xff\xfe bytes\n3,2026-10-01T02:00:00Z,news,\n"
        b"4,not a time,news,Text\n5,2026-10-01T03:00:00Z,social,Also good\n"
    )
    records, rejected = read_stream_file(path)
    good, bad = validate_file_records(records)
    assert [g["id"] for g in good] == ["1", "5"]
    reasons = {r["row"]: r["reason"] for r in rejected + bad}
    assert set(reasons) == {2, 3, 4}
    assert (
        "undecodable bytes" in reasons[2]
        and reasons[3] == "empty text"
        and "timestamp" in reasons[4]
    )


def test_jsonl_rejects_bad_json_and_bad_bytes_line_by_line(tmp_path):
    path = tmp_path / "feed.jsonl"
    ok = json.dumps({"id": "x", "ts": "2026-10-01", "text": "ok"}).encode()
    path.write_bytes(ok + b"\n{not json\n" + b'{"id": "y", "text": "\xc3\x28"}\n[1, 2]\n')
    records, rejected = read_stream_file(path)
    assert [r["id"] for r in records] == ["x"]
    assert {r["row"]: r["reason"].split(":")[0] for r in rejected} == {
        2: "invalid JSON",
        3: "undecodable bytes (not UTF-8 at byte 21)",
        4: "not a JSON object",
    }


def test_missing_column_names_the_file(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_text("id,when,text\n1,2026-10-01,hello\n")
    with pytest.raises(DataError, match=r"feed.csv: missing required column\(s\) \['ts'\]"):
        read_stream_file(path)


def test_labelled_table_errors_name_row_and_column(tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text("text,sentiment\nGood,positive\n,neutral\nMeh,sideways\n")
    with pytest.raises(DataError) as err:
        load_labelled(path)
    assert "row 2, column 'text': empty value" in str(err.value)
    assert "row 3, column 'sentiment': 'sideways' is not one of" in str(err.value)


def test_write_demo_data_hides_the_truth_columns(tmp_path):
    paths = write_demo_data(tmp_path, n_per_template=1, days=2)
    assert list(pd.read_csv(paths["stream"]).columns) == ["id", "ts", "source", "text", "entity"]
    assert json.loads(paths["events"].read_text())[0]["entity"] == "Norvale Bank"
