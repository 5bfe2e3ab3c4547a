"""`verticals compress customer_service --method int8`: the encoder in int8, the KB re-embedded."""

from __future__ import annotations

import numpy as np
import pytest

from customer_service import VERTICAL
from shared.compression import UnsupportedMethodError, compress_artifact
from shared.encoder_int8 import INT8_FILE, is_int8_folder, load_encoder
from shared.models import embed_texts
from shared.registry import load_runtime
from shared.settings import ServeSettings


@pytest.fixture(scope="module")
def compressed(cs_trained, tmp_path_factory):
    data, artifact = cs_trained
    out = tmp_path_factory.mktemp("cs_int8") / "int8"
    section = compress_artifact(VERTICAL, artifact, out, "int8", data, rounds=1)
    return artifact, out, section


def test_int8_replaces_the_fp32_encoder_weights_and_leaves_the_original(compressed):
    artifact, out, _ = compressed
    assert is_int8_folder(out / "encoder")
    assert not (out / "encoder" / "model.safetensors").exists()
    assert (artifact / "encoder" / "model.safetensors").exists()
    assert not (artifact / "encoder" / INT8_FILE).exists()


def test_the_int8_encoder_agrees_with_fp32_and_the_kb_is_embedded_by_it(compressed):
    from customer_service.kb_store import load_current

    artifact, out, section = compressed
    fp32, int8 = load_encoder(artifact / "encoder"), load_encoder(out / "encoder")
    texts = ["how do I freeze my card", "Überweisung storniert?", "x" * 400, "🙂"]
    cosine = np.sum(embed_texts(fp32, texts) * embed_texts(int8, texts), axis=1)
    assert cosine.min() > 0.98, cosine
    kb = load_current(out)
    np.testing.assert_allclose(kb.vectors, embed_texts(int8, kb.entry_texts), atol=1e-5)
    assert kb.version != load_current(artifact).version
    assert section["params"]["kb_embedding_agreement"]["mean_cosine"] > 0.98


def test_the_int8_bot_chats_and_reports_its_precision(compressed):
    _, out, _ = compressed
    bot = load_runtime(VERTICAL, out, ServeSettings(device="cpu"))
    reply = bot.chat("t", "I lost my card")
    assert reply["answer"] and "confidence" in reply and "handoff" in reply
    assert bot.info()["precision"] == "int8"
    text = "The yearly fee for the platinum card is 95 EUR."
    bot.kb.add([{"answer_id": "new_fee", "answer": text, "intent": ""}])
    kb = bot.kb.snapshot()  # a KB edit embeds with the int8 encoder too
    row = kb.entry_ids.index("new_fee")
    np.testing.assert_allclose(
        kb.vectors[row], embed_texts(bot.encoder, [kb.entry_texts[row]])[0], atol=1e-5
    )
    assert "new_fee" in [r["answer_id"] for r in bot.search(text, k=5)["results"]]


def test_the_measurement_compares_int8_with_the_original_on_val(compressed):
    _, _, section = compressed
    measured = section["measured"]
    assert measured["metric"] == "val_accuracy" and "val split" in measured["split"]
    assert set(measured["rows"]) == {"original", "int8"}
    row = measured["rows"]["int8"]
    assert 0.0 <= row["metric"] <= 1.0 and row["size_mb"] > 0 and row["p50_ms"] > 0


def test_another_method_is_refused_by_name(cs_trained, tmp_path):
    data, artifact = cs_trained
    with pytest.raises(UnsupportedMethodError, match="onnx"):
        compress_artifact(VERTICAL, artifact, tmp_path / "x", "onnx", data)
