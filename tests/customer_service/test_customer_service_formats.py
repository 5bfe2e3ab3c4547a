"""The bot's encoder is a plain sentence-transformers folder: it loads to the same embeddings."""

from __future__ import annotations

import numpy as np

from shared.registry import build_settings, get_vertical, load_runtime


def test_encoder_folder_loads_with_sentence_transformers(trained):
    from sentence_transformers import SentenceTransformer

    artifact = trained("customer_service")
    vertical = get_vertical("customer_service")
    bot = load_runtime(
        vertical, artifact, build_settings(vertical, customer_service_precision="fp32")
    )
    texts = ["how do I freeze my credit card", "wie spät ist es? 🙂"]
    served = np.stack(bot.encode_batch(texts))
    loaded = SentenceTransformer(str(artifact / "encoder"), device="cpu")
    np.testing.assert_allclose(loaded.encode(texts, normalize_embeddings=True), served, atol=1e-5)
