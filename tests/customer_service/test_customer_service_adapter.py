"""LoRA on the bot's sentence encoder: the adapter artifact, its checked loading, lora-merge."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from customer_service import SMOKE_OVERRIDES, VERTICAL
from customer_service import adapter as cs_adapter
from customer_service.config import CustomerServiceConfig, CustomerServiceSettings
from shared.adapters import base_weights_hash
from shared.artifacts import MANIFEST
from shared.compression import compress_artifact
from shared.config import load_config
from shared.errors import ArtifactError
from shared.models import embed_texts, load_model
from shared.registry import load_runtime

# float32 serving: these compare embeddings at 1e-5 (`auto` is bf16 on a CPU with native bf16)
FP32 = CustomerServiceSettings(device="cpu", customer_service_precision="fp32")

TEXTS = ["I lost my card", "what does the platinum card cost per year", "Überweisung? 🙂"]


@pytest.fixture(scope="module")
def adapter_bot(tmp_path_factory):
    """(data folder, adapter artifact) of the demo bank: LoRA on the random 2-layer BERT."""
    from customer_service.kb_data import write_demo_data
    from customer_service.training import train

    root = tmp_path_factory.mktemp("cs_lora")
    data = write_demo_data(root / "data")
    overrides = {
        **SMOKE_OVERRIDES,
        "recipe": "auto",  # with an adapter `auto` fine-tunes through it, weighing nothing
        "adapter": {"method": "lora", "r": 4},
        "trainer": {**SMOKE_OVERRIDES["trainer"], "max_steps": 8, "warmup_ratio": 0.0},
    }
    cfg = load_config(CustomerServiceConfig, overrides=overrides)
    return data, train(cfg, data, root / "run")


def _manifest(artifact):
    return json.loads((artifact / MANIFEST).read_text())


def test_the_artifact_holds_the_adapter_and_heads_not_the_encoder(adapter_bot):
    _, artifact = adapter_bot
    assert not (artifact / "encoder").exists()
    assert {p.name for p in (artifact / "adapter").iterdir()} == {
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    assert (artifact / "head.safetensors").is_file()
    manifest = _manifest(artifact)
    record = manifest["adapter"]
    assert record["method"] == "lora" and record["r"] == 4
    assert record["base_model"] == "random:bert-tiny"
    assert 0 < record["adapter_parameters"] < 0.05 * record["base_parameters"]
    assert manifest["recipe"]["recipe"] == "finetune"
    assert "adapter" in manifest["recipe"]["reason"]
    # the base the adapter belongs to is the one loaded by name: its weights were never changed
    base = cs_adapter.transformer_of(load_model("random:bert-tiny", "sentence-encoder")).model
    assert record["base_sha256"] == base_weights_hash(base)


def test_the_bot_serves_the_adapter_on_its_base_and_the_adapter_matters(adapter_bot):
    _, artifact = adapter_bot
    manifest = _manifest(artifact)
    bot = load_runtime(VERTICAL, artifact, FP32)
    served = embed_texts(bot.encoder, TEXTS)
    unmerged = cs_adapter.load_encoder(artifact, manifest, merge=False)
    np.testing.assert_allclose(served, embed_texts(unmerged, TEXTS), atol=1e-5)
    plain = load_model("random:bert-tiny", "sentence-encoder")
    assert np.abs(served - embed_texts(plain, TEXTS)).max() > 1e-3  # the adapter is not a no-op
    # the knowledge base was embedded by the adapted encoder, the one that embeds queries
    kb = bot.kb.snapshot()
    np.testing.assert_allclose(
        kb.vectors[:5], embed_texts(bot.encoder, kb.entry_texts[:5]), atol=1e-5
    )
    reply = bot.chat("lora-1", "I lost my card")
    assert {"answer", "confidence", "handoff"} <= set(reply)
    assert bot.info()["adapter"]["base_sha256"] == manifest["adapter"]["base_sha256"]


def test_a_kb_write_survives_a_restart_of_an_adapter_bot(adapter_bot, tmp_path):
    _, trained = adapter_bot
    artifact = shutil.copytree(trained, tmp_path / "artifact")
    bot = load_runtime(VERTICAL, artifact, FP32)
    text = "Our branch in Leeds opens at 9 on Saturdays."
    bot.kb.add([{"answer_id": "leeds_hours", "answer": text, "intent": ""}])
    again = load_runtime(VERTICAL, artifact, FP32)
    assert "leeds_hours" in [r["answer_id"] for r in again.search(text, k=5)["results"]]


def test_a_base_with_other_weights_is_refused_naming_both_hashes(adapter_bot, tmp_path):
    _, trained = adapter_bot
    artifact = shutil.copytree(trained, tmp_path / "artifact")
    manifest = _manifest(artifact)
    expected = manifest["adapter"]["base_sha256"]
    manifest["adapter"]["base_sha256"] = "0" * 64
    (artifact / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="0{64}") as info:
        load_runtime(VERTICAL, artifact, FP32)
    assert expected in str(info.value)


def test_lora_merge_writes_a_plain_bot_that_answers_alike(adapter_bot, tmp_path):
    data, artifact = adapter_bot
    out = tmp_path / "merged"
    section = compress_artifact(VERTICAL, artifact, out, "lora-merge", data, rounds=1)
    assert (out / "encoder" / "modules.json").is_file() and not (out / "adapter").exists()
    assert not _manifest(out).get("adapter")
    assert section["params"]["merge_check"]["mean_cosine"] > 0.9999
    merged = load_runtime(VERTICAL, out, FP32)
    served = load_runtime(VERTICAL, artifact, FP32)
    np.testing.assert_allclose(
        embed_texts(merged.encoder, TEXTS), embed_texts(served.encoder, TEXTS), atol=1e-5
    )
    assert merged.info()["adapter"] is None
    rows = section["measured"]["rows"]
    assert rows["lora-merge"]["metric"] == pytest.approx(rows["original"]["metric"], abs=0.02)


def test_int8_of_an_adapter_bot_merges_it_first(adapter_bot, tmp_path):
    from shared.encoder_int8 import is_int8_folder

    data, artifact = adapter_bot
    out = tmp_path / "int8"
    section = compress_artifact(VERTICAL, artifact, out, "int8", data, measure=False)
    assert is_int8_folder(out / "encoder") and not (out / "adapter").exists()
    assert section["params"]["kb_embedding_agreement"]["mean_cosine"] > 0.95
    bot = load_runtime(VERTICAL, out, FP32)
    assert bot.info()["precision"] == "int8"


def test_lora_merge_of_a_plain_bot_is_refused(cs_trained, tmp_path):
    data, artifact = cs_trained
    with pytest.raises(ArtifactError, match="not an adapter artifact"):
        compress_artifact(VERTICAL, artifact, tmp_path / "x", "lora-merge", data, measure=False)


def test_an_adapter_with_the_frozen_recipe_is_refused():
    with pytest.raises(ValidationError, match="recipe=finetune"):
        CustomerServiceConfig(recipe="frozen", adapter={"method": "lora"})
