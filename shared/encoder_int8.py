"""Sentence encoders in int8: a sentence-transformers folder whose weights are stored in int8.

A vertical that serves a `SentenceTransformer` (customer_service, recommender) compresses its
encoder folder in place with :func:`quantize_encoder_folder`: every Linear layer of the
transformer becomes a dynamic int8 layer (`shared.compression.quantize_int8`), the weights go
to `int8.safetensors`, and the fp32 `model.safetensors` is removed, so the folder is about a
quarter of its size. :func:`load_encoder` reads either kind of folder back: an int8 one is
rebuilt from its `config.json` (the architecture, with placeholder weights) and then given
exactly the stored int8 weights. An int8 encoder runs on the CPU.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shared.artifacts import load_weights, save_weights
from shared.compression import int8_state_dict, load_int8_state_dict, quantize_int8

INT8_FILE = "int8.safetensors"
FLOAT_FILES = ("model.safetensors", "pytorch_model.bin")
"""The transformer's float weights in a sentence-transformers folder (removed by int8)."""


def is_int8_folder(folder: str | Path) -> bool:
    """Whether `folder` holds an int8 encoder (`int8.safetensors` and no float weights)."""
    folder = Path(folder)
    return (folder / INT8_FILE).exists() and not any((folder / f).exists() for f in FLOAT_FILES)


def quantize_encoder_folder(folder: str | Path) -> Any:
    """Rewrites the sentence-transformers `folder` as an int8 encoder; returns that encoder.

    Only the transformer's weights change: tokenizer, pooling and normalisation files stay.
    """
    from sentence_transformers import SentenceTransformer

    folder = Path(folder)
    quantized = quantize_int8(SentenceTransformer(str(folder), device="cpu"))
    save_weights(folder / INT8_FILE, int8_state_dict(quantized))
    for name in FLOAT_FILES:
        (folder / name).unlink(missing_ok=True)
    return quantized.eval()


def _skeleton(folder: Path) -> Any:
    """The folder's `SentenceTransformer` with placeholder weights (the architecture only)."""
    from sentence_transformers import SentenceTransformer
    from transformers import AutoConfig, AutoModel

    with tempfile.TemporaryDirectory(prefix="verticals-int8-") as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(INT8_FILE))
        AutoModel.from_config(AutoConfig.from_pretrained(tmp)).save_pretrained(tmp)
        return SentenceTransformer(tmp, device="cpu")


def load_encoder(folder: str | Path, device: str = "cpu") -> Any:
    """The sentence encoder in `folder`: an int8 one (on the CPU) or a float one (on `device`)."""
    from shared.models import load_model

    folder = Path(folder)
    if not is_int8_folder(folder):
        return load_model(str(folder), "sentence-encoder", device=device)
    return load_int8_state_dict(_skeleton(folder), load_weights(folder / INT8_FILE)).eval()


def embedding_agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """How close two encoders' normalised embeddings of the same texts are: the mean and the
    minimum cosine similarity of each pair of rows."""
    cosine = np.sum(reference * other, axis=1)
    return {"mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min())}
