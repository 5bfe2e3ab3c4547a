"""Zero-shot topics: cosine similarity between a text and each topic's description.

Used when the training data has no `topic` column. The descriptions come from the config
(`topics: {name: description}`); the encoder is the base sentence encoder (MiniLM by default),
not the fine-tuned classifier, whose embedding space was bent towards sentiment.
"""

from __future__ import annotations

import numpy as np


class ZeroShotTopics:
    """Assigns each text the topic whose description embedding is most similar.

    Args:
        model_name: Sentence-encoder name for `shared.models.load_model`.
        descriptions: Topic name -> description.
        temperature: Softmax temperature over cosine similarities (for probabilities).
    """

    def __init__(
        self,
        model_name: str,
        descriptions: dict[str, str],
        device: str = "cpu",
        temperature: float = 0.05,
    ) -> None:
        from shared.models import load_model

        self.names = list(descriptions)
        self.encoder = load_model(model_name, "sentence-encoder", device=device)
        self.temperature = temperature
        self.topic_vectors = self._encode(
            [f"{name}: {text}" for name, text in descriptions.items()]
        )

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.encoder.encode(
                texts,
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        )

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(N, K) softmax over cosine similarities to the K topic descriptions."""
        sims = self._encode(texts) @ self.topic_vectors.T / self.temperature
        sims -= sims.max(1, keepdims=True)
        exp = np.exp(sims)
        return exp / exp.sum(1, keepdims=True)

    def assign(self, texts: list[str]) -> list[str]:
        return [self.names[int(i)] for i in self.probabilities(texts).argmax(1)]
