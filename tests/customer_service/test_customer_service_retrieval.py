"""Embedding texts (one forward for a request) and the index's lazy BM25."""

from __future__ import annotations

import numpy as np
import pytest

from customer_service.retrieval import KnowledgeIndex, set_precision
from shared.models import embed_texts, load_model

TEXTS = ["how do I freeze my card", "hi", "the shop said they refunded me but I don't see it"]


@pytest.fixture(scope="module")
def tiny_encoder():
    encoder = load_model("random:bert-tiny", "sentence-encoder", device="cpu")
    encoder.max_seq_length = 8
    return encoder.eval()


def test_one_forward_path_matches_sentence_transformers_encode_including_truncation(tiny_encoder):
    set_precision(tiny_encoder, "fp32", "cpu")
    fast = embed_texts(tiny_encoder, TEXTS)  # a request's few texts: one padded forward
    bulk = tiny_encoder.encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    assert fast.shape == bulk.shape == (3, tiny_encoder.get_embedding_dimension())
    assert fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fast, bulk, atol=1e-5)
    many = embed_texts(tiny_encoder, TEXTS * 3, batch_size=4)  # more than a batch: `encode`
    np.testing.assert_allclose(many, np.concatenate([fast] * 3), atol=1e-5)
    long = TEXTS[2] + " and something else entirely"  # differs only after the 8-token cut
    np.testing.assert_allclose(
        embed_texts(tiny_encoder, [long]), embed_texts(tiny_encoder, [TEXTS[2]]), atol=1e-6
    )
    assert embed_texts(tiny_encoder, []).shape == (0, tiny_encoder.get_embedding_dimension())


def test_bf16_keeps_the_direction_and_returns_float32(tiny_encoder):
    set_precision(tiny_encoder, "fp32", "cpu")
    reference = embed_texts(tiny_encoder, TEXTS)
    try:
        assert set_precision(tiny_encoder, "bf16", "cpu") == "bf16"
        low = embed_texts(tiny_encoder, TEXTS)
    finally:
        set_precision(tiny_encoder, "fp32", "cpu")
    assert low.dtype == np.float32
    assert (low * reference).sum(1).min() > 0.99
    assert set_precision(tiny_encoder, "auto", "cuda") == "fp32"  # auto is bf16 on CPUs only


def test_bm25_is_built_only_when_a_search_uses_it():
    index = KnowledgeIndex(["A", "B"], ["freeze card", "open account"], np.eye(2, dtype=np.float32))
    index.search(np.array([1, 0], dtype=np.float32), "freeze card", k=2)
    assert index._bm25 is None  # weight 0: dense only
    hits = index.search(np.array([0.5, 0.5], dtype=np.float32), "open", k=2, bm25_weight=0.5)
    assert index._bm25 is not None and [h.answer_id for h in hits] == ["B", "A"]
    assert hits[0].score == pytest.approx(1.0) and hits[0].dense == pytest.approx(0.5)


def test_lexical_candidates_outside_the_dense_depth_join_the_ranking():
    vectors = np.eye(4, dtype=np.float32)
    index = KnowledgeIndex(["A", "B", "C", "D"], ["w x", "y z", "lost card", "q r"], vectors)
    query = np.array([1, 0.9, 0, 0.1], dtype=np.float32)
    dense_only = index.search(query, "lost card", k=4, depth=2)
    assert [h.answer_id for h in dense_only] == ["A", "B"]
    hybrid = index.search(query, "lost card", k=4, depth=2, bm25_weight=2.0)
    assert hybrid[0].answer_id == "C" and hybrid[0].dense == pytest.approx(0.0)
