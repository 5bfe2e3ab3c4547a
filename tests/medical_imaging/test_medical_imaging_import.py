"""Data import for imaging: renamed manifest columns, a label map, fixed splits, the data report."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

import medical_imaging
from medical_imaging.config import MedicalImagingConfig
from medical_imaging.datasets import read_source, split_source
from medical_imaging.synthetic import write_dataset
from shared.config import load_config
from shared.data_report import MANIFEST_KEY
from shared.errors import DataError, VerticalsError

RENAMED = {"path": "file", "label": "finding", "patient_id": "subject", "split": "fold"}
CODES = {"normal": "0", "lesion": "1"}


@pytest.fixture(scope="module")
def user_manifest(tmp_path_factory):
    """A manifest as a user writes it: own column names, labels 0/1, 8 images fixed as test
    (4 patients), the other 24 images without a split."""
    folder = tmp_path_factory.mktemp("user_manifest")
    manifest = write_dataset(folder, n_patients=16, images_per_patient=2, size=40)
    df = pd.read_csv(manifest)
    df["label"] = df["label"].map(CODES)
    df["split"] = ["test" if i < 8 else "" for i in range(len(df))]
    path = folder / "user.csv"
    df.rename(columns=RENAMED).to_csv(path, index=False)
    return path


def _cfg(**overrides) -> MedicalImagingConfig:
    smoke = dict(medical_imaging.SMOKE_OVERRIDES)
    return load_config(MedicalImagingConfig, overrides={**smoke, **overrides})


def test_columns_and_label_map_apply_to_a_manifest(user_manifest):
    source = read_source(
        user_manifest, columns=RENAMED, label_map={"0": "Normal", "1": "pneumonia"}
    )
    assert sorted(set(source.labels)) == ["Normal", "pneumonia"]
    assert source.groups is not None and len(set(source.groups)) == 16
    assert source.splits[:8] == ["test"] * 8 and set(source.splits[8:]) == {""}
    with pytest.raises(DataError, match=r"no column 'diagnosis' \(columns.label=diagnosis"):
        read_source(user_manifest, columns={"path": "file", "label": "diagnosis"})


def test_fixed_test_rows_turn_the_drawn_test_split_off(user_manifest):
    source = read_source(user_manifest, columns=RENAMED)
    splits = split_source(source, 0.25, 0.25, seed=0)
    assert splits["test"].tolist() == list(range(8))
    assert len(splits["val"]) > 0 and len(splits["train"]) + len(splits["val"]) == 24


def test_label_map_orders_the_classes_and_conflicts_with_class_names():
    cfg = _cfg(label_map={"1": "pneumonia", "0": "normal"})
    assert list(cfg.label_map.values()) == ["pneumonia", "normal"]
    with pytest.raises(VerticalsError, match="class_names and label_map both name the classes"):
        _cfg(label_map={"0": "normal"}, class_names=["normal", "pneumonia"])
    with pytest.raises(VerticalsError, match=r"\['file'\] are not columns of the data"):
        _cfg(columns={"file": "path"})


def test_train_on_a_user_manifest_reports_the_fixed_test_split(user_manifest, tmp_path, caplog):
    cfg = _cfg(columns=RENAMED, label_map={"0": "normal", "1": "pneumonia"})
    with caplog.at_level(logging.INFO, logger="medical_imaging.training"):
        artifact = medical_imaging.train(cfg, user_manifest, tmp_path / "run")
    manifest = json.loads((artifact / "manifest.json").read_text())
    report = manifest[MANIFEST_KEY]
    assert manifest["label_map"] == ["normal", "pneumonia"]
    assert manifest["positive_label"] == "pneumonia"
    assert report["rows_read"] == 32 and report["rows_used"] == 32
    assert report["splits"]["test"] == {"rows": 8, "fixed": 8, "drawn": 0, "drawn_fraction": 0.0}
    val, train = report["splits"]["val"], report["splits"]["train"]
    assert val["fixed"] == 0 and val["drawn"] == val["rows"] > 0
    assert train["rows"] + val["rows"] == 24
    assert set(report["classes"]["test"]) <= {"normal", "pneumonia"}
    assert sum(report["classes"]["test"].values()) == 8
    assert manifest["metrics"]["test_n"] == 8
    assert any("test has 8 rows (fewer than 30)" in w for w in report["warnings"])
    logged = [r for r in caplog.records if r.getMessage().startswith("data report:")]
    assert logged and "8 fixed by the split column" in logged[0].getMessage()


def test_max_images_is_reported_as_dropped(user_manifest, tmp_path):
    from medical_imaging.data_import import CAP_REASON, prepare_splits
    from medical_imaging.labels import resolve_labels

    cfg = _cfg(columns=RENAMED, label_map={"0": "normal", "1": "lesion"}, max_images=6)
    source = read_source(user_manifest, columns=cfg.columns, label_map=cfg.label_map)
    names, ids, _ = resolve_labels(source.labels, None, source.origin, ["normal", "lesion"])
    splits, report = prepare_splits(cfg, source, names, ids)
    assert len(splits["train"]) == 6
    assert report.dropped[CAP_REASON] == report.rows_read - report.rows_used > 0


def test_header_only_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "empty.csv").write_text("file,finding\n")
    with pytest.raises(DataError, match=r"empty.csv: has no rows \(only a header"):
        read_source(tmp_path / "empty.csv", columns={"path": "file", "label": "finding"})


def test_a_patient_split_across_fixed_and_drawn_splits_is_a_warning(user_manifest, tmp_path):
    from medical_imaging.data_import import prepare_splits
    from medical_imaging.labels import resolve_labels

    df = pd.read_csv(user_manifest)
    df["file"] = [str(user_manifest.parent / p) for p in df["file"]]
    df["fold"] = ["test" if i in (0, 2, 4, 6, 8, 10, 12, 14) else "" for i in range(len(df))]
    df.to_csv(tmp_path / "split_patients.csv", index=False)
    cfg = _cfg(columns=RENAMED)
    source = read_source(tmp_path / "split_patients.csv", columns=RENAMED)
    names, ids, _ = resolve_labels(source.labels, "1", source.origin, None)
    _, report = prepare_splits(cfg, source, names, ids)
    assert any(
        w.startswith("8 patient(s) have images in more than one split") for w in report.warnings
    )
    _, clean = prepare_splits(cfg, read_source(user_manifest, columns=RENAMED), names, ids)
    assert not any("more than one split" in w for w in clean.warnings)
