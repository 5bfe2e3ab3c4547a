"""Tables are read and validated with errors naming file, row and column; splits never leak groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.data import (
    Column,
    TableSchema,
    fingerprint,
    load_table,
    read_image_folder,
    read_npz_splits,
    read_table,
    split_indices,
)
from shared.errors import DataError

SCHEMA = TableSchema(
    "reviews",
    (
        Column("text"),
        Column("stars", "int", choices=(1, 2, 3, 4, 5)),
        Column("ts", "datetime", required=False),
    ),
)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_reads_all_table_formats(tmp_path, suffix):
    df = pd.DataFrame({"text": ["good", "bad"], "stars": ["5", "1"]})
    path = tmp_path / f"t{suffix}"
    {
        ".csv": lambda: df.to_csv(path, index=False),
        ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
        ".parquet": lambda: df.to_parquet(path),
    }[suffix]()
    out = load_table(path, SCHEMA)
    assert out["stars"].tolist() == [5, 1]


def test_error_names_file_row_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,stars\nfine,4\n,5\nok,seven\nok,9\n")
    with pytest.raises(DataError) as err:
        load_table(path, SCHEMA)
    message = str(err.value)
    assert f"{path}: row 2, column 'text': empty value" in message
    assert "row 3, column 'stars': 'seven' is not a number" in message
    assert "row 4, column 'stars': '9' is not one of" in message


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("body,stars\nx,1\n")
    with pytest.raises(DataError, match=r"missing required column\(s\) \['text'\]"):
        load_table(path, SCHEMA)


def test_malformed_jsonl_and_unknown_format(tmp_path):
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"text": "a", "stars": 1}\n{not json}\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_table(bad)
    with pytest.raises(DataError, match="unknown table format"):
        read_table(tmp_path / "t.xlsx") if (tmp_path / "t.xlsx").write_text("x") else None
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,stars\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_table(latin)


def test_bad_timestamp_is_reported(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,stars,ts\na,1,2024-01-02T10:00:00Z\nb,2,yesterday-ish\n")
    with pytest.raises(DataError, match="row 2, column 'ts': 'yesterday-ish' is not a timestamp"):
        load_table(path, SCHEMA)


def test_splits_are_deterministic_stratified_and_group_aware():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=600)
    a = split_indices(600, labels=labels, seed=7)
    b = split_indices(600, labels=labels, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    train, val, test = a
    assert (
        len(set(train) | set(val) | set(test)) == 600
        and abs(len(val) - 60) <= 2
        and abs(len(test) - 60) <= 2
    )
    for part in (val, test):  # stratified: class shares within a point or two of the whole
        assert np.allclose(
            np.bincount(labels[part], minlength=3) / len(part), np.bincount(labels) / 600, atol=0.03
        )

    groups = rng.integers(0, 80, size=600)  # e.g. patients
    train, val, test = split_indices(600, labels=labels, groups=groups, seed=1)
    sets = [set(groups[p]) for p in (train, val, test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(val) > 0 and len(test) > 0


def test_fingerprint_tracks_content(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a\n1\n")
    first = fingerprint(path)
    assert first == fingerprint(path)
    path.write_text("a\n2\n")
    assert fingerprint(path) != first
    assert fingerprint(pd.DataFrame({"a": [1]})) != fingerprint(pd.DataFrame({"a": [2]}))


def test_images_from_folders_and_npz(tmp_path):
    from PIL import Image

    for cls in ("normal", "lesion"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "imgs" / cls / "a.png")
    paths, labels = read_image_folder(tmp_path / "imgs")
    assert sorted(labels) == ["lesion", "normal"] and len(paths) == 2
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        read_image_folder(tmp_path / "empty")

    np.savez(
        tmp_path / "m.npz",
        train_images=np.zeros((3, 28, 28), np.uint8),
        train_labels=np.array([[0], [1], [0]]),
    )
    splits = read_npz_splits(tmp_path / "m.npz")
    assert splits["train"][0].shape == (3, 28, 28) and splits["train"][1].tolist() == [0, 1, 0]
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable npz"):
        read_npz_splits(tmp_path / "broken.npz")
