"""Integration with the real packaged MiniLM: retrieval over the demo KB works before any training."""

from __future__ import annotations

import pytest

from customer_service.kb_data import KB
from customer_service.retrieval import KnowledgeIndex, answer_text
from shared.models import embed_texts


@pytest.mark.slow
def test_untuned_minilm_retrieves_the_right_bank_answer(minilm):
    intents = list(KB)
    texts = [answer_text(title, answer) for title, answer, _ in KB.values()]
    index = KnowledgeIndex(intents, texts, embed_texts(minilm, texts), bm25_weight=0.1)
    queries = {
        "I forgot my password": "reset_password",
        "somebody stole my wallet with my card": "report_stolen_card",
        "can I send money to another country": "international_transfer",
        "I moved house": "update_address",
    }
    vectors = embed_texts(minilm, list(queries))
    found = [index.search(v, q, k=3)[0].answer_id for v, q in zip(vectors, queries, strict=True)]
    assert sum(f == t for f, t in zip(found, queries.values(), strict=True)) >= 3, found
