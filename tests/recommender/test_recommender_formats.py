"""The artifact's item tower (`encoder/`) opens with sentence-transformers alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender import VERTICAL
from recommender.data import prepare_items
from shared.registry import load_runtime
from shared.settings import ServeSettings


@pytest.fixture(scope="module")
def runtime(trained):
    return load_runtime(VERTICAL, trained("recommender"), ServeSettings(device="cpu"))


def test_sentence_transformer_gives_the_indexed_item_embeddings(trained, runtime):
    from sentence_transformers import SentenceTransformer

    artifact = trained("recommender")
    encoder = SentenceTransformer(str(artifact / "encoder"), device="cpu")
    assert encoder.max_seq_length == runtime.cfg.max_seq_length
    items = prepare_items(
        pd.read_json(artifact / "items.jsonl", lines=True, dtype={"item_id": str})
    )
    assert list(items["item_id"]) == runtime.index.ids
    vectors = encoder.encode(list(items["text"]), normalize_embeddings=True)
    np.testing.assert_allclose(vectors, runtime.index.emb, atol=1e-5)


def test_new_items_embed_as_sentence_transformers_encodes_them(trained, runtime):
    from sentence_transformers import SentenceTransformer

    from shared.models import embed_texts

    encoder = SentenceTransformer(str(trained("recommender") / "encoder"), device="cpu")
    texts = ["Brass desk lamp. home. lighting, brass", "a much longer text " * 40]  # truncated
    np.testing.assert_allclose(
        encoder.encode(texts, normalize_embeddings=True),
        embed_texts(runtime.encoder, texts),  # what POST /items indexes
        atol=1e-5,
    )
