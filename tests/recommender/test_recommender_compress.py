"""`verticals compress recommender --method int8`: the item tower in int8, the catalogue re-embedded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from recommender import VERTICAL
from recommender.data import load_dataset
from recommender.index import ItemIndex
from shared.compression import UnsupportedMethodError, compress_artifact
from shared.config import load_config
from shared.encoder_int8 import INT8_FILE, is_int8_folder, load_encoder
from shared.errors import DataError
from shared.models import embed_texts
from shared.registry import load_runtime
from shared.settings import ServeSettings

NEW_ITEM = {
    "item_id": "new-kayak",
    "title": "Inflatable kayak for two",
    "category": "outdoor",
    "description": "Light, packs into a backpack; pump included. Ünïcode 🙂",
}


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec_int8")
    data = VERTICAL.example_data(tmp / "data")
    cfg = load_config(VERTICAL.config_cls, overrides=dict(VERTICAL.smoke_overrides))
    artifact = VERTICAL.train(cfg, data, tmp / "run")
    out = tmp / "int8"
    section = compress_artifact(VERTICAL, artifact, out, "int8", data, rounds=1)
    return data, artifact, out, section


def test_int8_replaces_the_item_tower_and_leaves_the_original(compressed):
    _, artifact, out, _ = compressed
    assert is_int8_folder(out / "encoder")
    assert not (out / "encoder" / "model.safetensors").exists()
    assert (artifact / "encoder" / "model.safetensors").exists()
    assert not (artifact / "encoder" / INT8_FILE).exists()


def test_the_catalogue_is_embedded_by_the_int8_tower(compressed):
    data, artifact, out, section = compressed
    manifest = json.loads((artifact / "manifest.json").read_text())
    cfg = VERTICAL.config_cls.model_validate(manifest["config"])
    items = load_dataset(data, cfg.event_weights).items
    index = ItemIndex.load(out / "index")
    assert index.ids == ItemIndex.load(artifact / "index").ids
    texts = dict(zip(items["item_id"].astype(str), items["text"], strict=True))
    encoder = load_encoder(out / "encoder")
    encoder.max_seq_length = cfg.max_seq_length
    expected = embed_texts(encoder, [texts[i] for i in index.ids])
    np.testing.assert_allclose(index.emb, expected, atol=1e-5)
    fp32 = ItemIndex.load(artifact / "index").emb  # as trained: not what the int8 tower gives
    assert np.abs(fp32 - index.emb).max() > 1e-5
    agreement = section["params"]["catalogue_embedding_agreement"]
    assert agreement["min_cosine"] > 0.95
    assert section["params"]["catalogue_items"] == len(index.ids)


def test_the_int8_recommender_serves_adds_items_and_restarts(compressed, tmp_path):
    _, _, out, _ = compressed
    artifact = shutil.copytree(out, tmp_path / "artifact")
    runtime = load_runtime(VERTICAL, artifact, ServeSettings(device="cpu"))
    assert runtime.info()["precision"] == "int8"
    [reply] = runtime.predict([{"user_id": "u0001", "k": 5}])
    assert len(reply["items"]) == 5
    runtime.add_items([NEW_ITEM])
    row = runtime.index.row_of["new-kayak"]
    runtime.close()
    again = load_runtime(VERTICAL, artifact, ServeSettings(device="cpu"))
    assert again.index.row_of["new-kayak"] == row
    similar = {r["item_id"] for r in again.similar("new-kayak", 3)}
    assert similar and "new-kayak" not in similar
    again.close()


def test_the_measurement_scores_recall_on_the_validation_users(compressed):
    _, _, _, section = compressed
    measured = section["measured"]
    assert measured["metric"] == "val_recall_at_10" and "val split" in measured["split"]
    assert set(measured["rows"]) == {"original", "int8"}
    for row in measured["rows"].values():
        assert 0.0 <= row["metric"] <= 1.0 and row["size_mb"] > 0 and row["p50_ms"] > 0


def test_data_without_an_indexed_item_is_refused_naming_it(compressed, tmp_path):
    data, artifact, _, _ = compressed
    partial = shutil.copytree(data, tmp_path / "data")
    items_file = partial / "items.csv"
    items = pd.read_csv(items_file)
    dropped = str(items["item_id"].iloc[0])
    items.iloc[1:].to_csv(items_file, index=False)
    with pytest.raises(DataError, match=dropped):
        compress_artifact(VERTICAL, artifact, tmp_path / "x", "int8", partial, measure=False)


def test_another_method_is_refused_by_name(compressed, tmp_path):
    data, artifact, _, _ = compressed
    with pytest.raises(UnsupportedMethodError, match="onnx"):
        compress_artifact(VERTICAL, artifact, tmp_path / "x", "onnx", data)
