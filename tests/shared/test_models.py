"""Model sources: packaged offline defaults, clear offline errors, the EfficientNet-Lite0 mapping."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from shared.errors import ModelUnavailableError
from shared.models import efficientnet_lite0_weights_path, load_model


def drawn_image() -> torch.Tensor:
    """A 224x224 scene the test draws itself: sky, a sun, a house and grass, ImageNet-normalised."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (224, 224), (120, 170, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 160, 224, 224], fill=(60, 150, 60))
    draw.ellipse([150, 20, 200, 70], fill=(250, 220, 50))
    draw.rectangle([50, 100, 130, 170], fill=(180, 60, 40))
    draw.polygon([(40, 100), (90, 60), (140, 100)], fill=(90, 40, 30))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406])[:, None, None],
        torch.tensor([0.229, 0.224, 0.225])[:, None, None],
    )
    return ((x - mean) / std)[None]


@pytest.mark.slow
def test_mapped_efficientnet_reproduces_the_packaged_weights_predictions():
    reference_impl = pytest.importorskip(
        "efficientnet_lite_pytorch", reason="dev extra: efficientnet-lite-pytorch"
    )
    reference = reference_impl.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(efficientnet_lite0_weights_path())
    ).eval()
    ours = load_model("efficientnet_lite0", "image-classifier").eval()
    x = drawn_image()
    with torch.inference_mode():
        expected, got = reference(x), ours(x)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert got.topk(5).indices.tolist() == expected.topk(5).indices.tolist()


def test_efficientnet_adapts_head_and_grayscale_stem():
    model = load_model("efficientnet_lite0", "image-classifier", num_classes=2, in_chans=1).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 2)


@pytest.mark.slow
def test_packaged_minilm_loads_offline_as_encoder_and_classifier(minilm):
    emb = minilm.encode(
        ["How do I reset my card PIN?", "I forgot the PIN of my card", "The weather is warm"],
        normalize_embeddings=True,
    )
    assert emb.shape == (3, 384)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
    tokenizer, model = load_model("minilm", "text-classifier", num_labels=3)
    logits = model(**tokenizer(["hello"], return_tensors="pt")).logits
    assert logits.shape == (1, 3)


def test_random_tiny_models_for_tests():
    encoder = load_model("random:bert-tiny", "sentence-encoder")
    assert encoder.encode(["a b c"]).shape == (1, 32)
    net = load_model("random:resnet10t", "image-classifier", num_classes=3, in_chans=1)
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_missing_model_offline_names_the_model_and_the_choices():
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        load_model("acme/does-not-exist-model", "sentence-encoder")
    message = str(err.value)
    assert (
        "acme/does-not-exist-model" in message
        and "'minilm'" in message
        and "efficientnet_lite0" in message
    )
    assert "Traceback" not in message and time.perf_counter() - started < 60


def test_embed_texts_runs_without_dropout_and_keeps_the_encoders_mode():
    from shared.models import embed_texts

    encoder = load_model("random:bert-tiny", "sentence-encoder")
    encoder.train()  # as inside a training epoch, where a hook may refresh a cache
    texts = ["reset my password", "card declined abroad"]
    first, second = embed_texts(encoder, texts), embed_texts(encoder, texts)
    np.testing.assert_array_equal(first, second)  # dropout would make two calls differ
    assert encoder.training  # the caller's mode is restored
    bulk = embed_texts(encoder, texts * 40, batch_size=16)  # the `encode` path
    np.testing.assert_allclose(bulk[:2], first, atol=1e-5)
    assert encoder.training
