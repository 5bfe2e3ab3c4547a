"""Zero-shot topics: cosine similarity between a text and each topic's description.

Used when the training data has no `topic` column. The descriptions come from the config
(`topics: {name: description}`); the encoder is the base sentence encoder (MiniLM by default),
not the fine-tuned classifier, whose embedding space was bent towards sentiment.
"""

from __future__ import annotations

import numpy as np

from shared.calibration import softmax
from shared.models import embed_texts, load_model


class ZeroShotTopics:
    """Assigns each text the topic whose description embedding is most similar.

    Args:
        model_name: Sentence-encoder name for `shared.models.load_model`.
        descriptions: Topic name -> description.
        temperature: Softmax temperature over cosine similarities (for probabilities).
        encoder: An encoder of `model_name` already loaded (shared by several scorers).
    """

    def __init__(
        self,
        model_name: str,
        descriptions: dict[str, str],
        device: str = "cpu",
        temperature: float = 0.05,
        encoder=None,
    ) -> None:
        self.names = list(descriptions)
        if encoder is None:
            encoder = load_model(model_name, "sentence-encoder", device=device)
        self.encoder = encoder
        self.temperature = temperature
        self.topic_vectors = embed_texts(
            self.encoder, [f"{name}: {text}" for name, text in descriptions.items()]
        )

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(N, K) softmax over cosine similarities to the K topic descriptions."""
        return softmax(embed_texts(self.encoder, texts) @ self.topic_vectors.T, self.temperature)

    def assign(self, texts: list[str]) -> list[str]:
        return [self.names[int(i)] for i in self.probabilities(texts).argmax(1)]
