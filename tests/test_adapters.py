"""LoRA adapters (`shared.adapters`) and many tenants on one base (finance_sentiment), on the
random 2-layer BERT.

Tolerances, on max |difference| against the reference on the same inputs:
- an adapter saved and loaded again, and the same adapter in a mixed batch: 1e-6 (the same
  float operations);
- `lora-merge` (W + s B A folded into one matrix, a different float summation): 1e-4.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

import finance_sentiment as fs
from customer_service.config import CustomerServiceConfig
from finance_sentiment.config import FinanceConfig
from finance_sentiment.settings import FinanceSettings
from finance_sentiment.tenants import score_mixed
from medical_imaging.config import MedicalImagingConfig
from shared.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    AdapterCache,
    AdapterConfig,
    apply_lora,
    base_weights_hash,
    load_adapter,
    merge_lora,
    save_adapter,
    trainable_parameters,
    weights_hash,
)
from shared.compression import compress_artifact
from shared.config import load_config
from shared.errors import ArtifactError, VerticalsError
from shared.models import load_model
from shared.registry import build_settings, load_runtime
from shared.serving import create_app

EXACT = 1e-6
MERGE_ATOL = 1e-4
URL = "/v1/finance_sentiment"
TEXTS = ["Norvale Bank shares plunge 12% after profit warning", "Quillon raises its guidance"]


def _base():
    return load_model("random:bert-tiny", "text-backbone")


def _batch(tokenizer, texts=TEXTS):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _hidden(body, batch, **kwargs) -> torch.Tensor:
    with torch.inference_mode():
        return body(**batch, **kwargs).last_hidden_state


def _trained_lora(seed: int = 0):
    """A LoRA body whose B matrices are non-zero (as after training), and its tokenizer."""
    tokenizer, body = _base()
    model = apply_lora(body, AdapterConfig())
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return tokenizer, model.eval()


# --- the core --------------------------------------------------------------------------------


def test_lora_trains_only_the_adapter_keeps_shapes_and_starts_as_the_base():
    tokenizer, body = _base()
    batch = _batch(tokenizer)
    before, digest = _hidden(body.eval(), batch), base_weights_hash(body)
    model = apply_lora(body, AdapterConfig(r=4, target_modules=["query", "value"])).eval()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert trainable_parameters(model) == 2 * 2 * (32 * 4 + 4 * 32)  # 2 layers, query and value
    after = _hidden(model, batch)
    assert after.shape == before.shape == (2, batch["input_ids"].shape[1], 32)
    assert torch.equal(after, before)  # B starts at zero: the adapter adds nothing yet
    assert base_weights_hash(model) == digest  # wrapping renames, the base hash does not move


def test_default_lora_adapts_every_linear_layer_and_round_trips(tmp_path):
    tokenizer, body = _base()
    linear = sorted(n for n, m in body.named_modules() if isinstance(m, torch.nn.Linear))
    model = apply_lora(body, AdapterConfig(r=4))  # target_modules unset: all-linear
    assert sorted(model.peft_config["default"].target_modules) == linear  # pooler included
    assert len(linear) == 2 * 6 + 1  # q, k, v, attention out, intermediate, out per layer
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    batch = _batch(tokenizer)
    want, digest = _hidden(model.eval(), batch), base_weights_hash(model)
    folder = save_adapter(model, tmp_path / "adapter", base_name="random:bert-tiny")
    assert len(load_file(folder / ADAPTER_WEIGHTS)) == 2 * len(linear)
    loaded = load_adapter(_base()[1], folder, digest, "random:bert-tiny")
    assert (_hidden(loaded, batch) - want).abs().max() <= EXACT
    assert (_hidden(merge_lora(model), batch) - want).abs().max() <= MERGE_ATOL


def test_all_linear_is_refused_for_ia3_and_other_strings_are_refused():
    with pytest.raises(ValueError, match="all-linear applies to lora"):
        AdapterConfig(method="ia3", target_modules="all-linear")
    with pytest.raises(ValueError, match="all-linear"):
        AdapterConfig(target_modules="everything")


@pytest.mark.parametrize(
    "config_cls",
    [FinanceConfig, CustomerServiceConfig, MedicalImagingConfig],
    ids=lambda c: c.__name__,
)
def test_recipe_lora_is_finetune_through_a_lora_adapter(config_cls):
    cfg = load_config(config_cls, overrides=["recipe=lora"])
    assert cfg.recipe == "finetune" and cfg.adapter == AdapterConfig()
    ranked = load_config(config_cls, overrides=["recipe=lora", "adapter.r=4"])
    assert ranked.recipe == "finetune" and ranked.adapter.r == 4
    with pytest.raises(VerticalsError, match="recipe=lora asks for a LoRA adapter"):
        load_config(config_cls, overrides=["recipe=lora", "adapter.method=ia3"])


def test_the_weights_hash_is_stable_and_changes_with_any_value():
    (_, a), (_, b) = _base(), _base()
    assert base_weights_hash(a) == base_weights_hash(b)
    state = dict(a.state_dict())
    state["pooler.dense.bias"] = state["pooler.dense.bias"].clone()
    state["pooler.dense.bias"][0] += 1e-3
    assert weights_hash(state) != base_weights_hash(a)


def test_an_adapter_round_trips_alone_and_refuses_another_base(tmp_path):
    tokenizer, model = _trained_lora()
    batch = _batch(tokenizer)
    want, digest = _hidden(model, batch), base_weights_hash(model)
    folder = save_adapter(model, tmp_path / "adapter", base_name="random:bert-tiny")
    assert sorted(p.name for p in folder.iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    saved = load_file(folder / ADAPTER_WEIGHTS)
    assert all("lora_" in k for k in saved) and len(saved) == 2 * 13  # A and B of 13 Linear layers
    assert json.loads((folder / ADAPTER_CONFIG).read_text())["base_model_name_or_path"] == (
        "random:bert-tiny"
    )
    loaded = load_adapter(_base()[1], folder, digest, "random:bert-tiny")
    assert (_hidden(loaded, batch) - want).abs().max() <= EXACT

    _, other = _base()
    with torch.no_grad():
        other.pooler.dense.bias.add_(0.01)
    with pytest.raises(ArtifactError) as error:
        load_adapter(other, folder, digest, "random:bert-tiny")
    assert digest in str(error.value) and base_weights_hash(other) in str(error.value)


def test_merging_folds_the_adapter_into_plain_weights():
    tokenizer, model = _trained_lora()
    batch = _batch(tokenizer)
    want = _hidden(model, batch)
    merged = merge_lora(model)
    assert not any("lora_" in k for k in merged.state_dict())
    assert (_hidden(merged, batch) - want).abs().max() <= MERGE_ATOL


def test_the_cache_evicts_the_least_recently_used_and_mixes_adapters_in_one_batch(tmp_path):
    tokenizer, model = _trained_lora(seed=0)
    batch = _batch(tokenizer)
    for seed in (1, 2, 3):
        _, other = _trained_lora(seed)
        save_adapter(other, tmp_path / str(seed), base_name="random:bert-tiny")
    alone = {
        seed: _hidden(
            load_adapter(_base()[1], tmp_path / str(seed), base_weights_hash(model), "x"), batch
        )
        for seed in (2, 3)
    }
    cache: AdapterCache[str] = AdapterCache(model, capacity=2)
    assert cache.pinned == {"default"}
    cache.put("one", tmp_path / "1", "value 1")
    cache.put("two", tmp_path / "2", "value 2")
    assert cache.get("one") == "value 1"  # now "two" is the least recently used
    assert cache.put("three", tmp_path / "3", "value 3") == ["two"]
    assert cache.keys() == ["one", "three"] and cache.evictions == 1
    assert set(model.peft_config) == {"default", "tenant_one", "tenant_three"}
    assert cache.put("two", tmp_path / "2", "value 2") == ["one"]
    assert cache.remove("three") and not cache.remove("three")
    cache.put("three", tmp_path / "3", "value 3")
    names = [cache.adapter_name("two"), cache.adapter_name("three")]
    mixed = _hidden(model, batch, adapter_names=names)  # row 0 through two, row 1 through three
    assert (mixed[0] - alone[2][0]).abs().max() <= EXACT
    assert (mixed[1] - alone[3][1]).abs().max() <= EXACT
    assert not torch.allclose(alone[2], alone[3])


# --- finance_sentiment: adapter artifacts ----------------------------------------------------


@pytest.fixture(scope="module")
def lora_artifact(tmp_path_factory):
    """A finance adapter artifact (LoRA r=8 on the random BERT, 4 steps) and its data."""
    root = tmp_path_factory.mktemp("fs_lora")
    data = fs.example_data(root / "data")
    overrides = {
        **fs.VERTICAL.smoke_overrides,
        "adapter": {"method": "lora"},
        "trainer": {"max_steps": 4, "epochs": 1, "batch_size": 8, "progress": False},
    }
    return fs.train(load_config(fs.FinanceConfig, overrides=overrides), data, root / "run"), data


def _load(artifact: Path, **settings):
    return load_runtime(
        fs.VERTICAL, artifact, build_settings(fs.VERTICAL, device="cpu", **settings)
    )


def _logits(runtime, texts=TEXTS) -> torch.Tensor:
    with torch.inference_mode():
        return runtime.scorer.task(_batch(runtime.scorer.tokenizer, texts))["logits"]


def test_an_adapter_artifact_holds_only_the_adapter_and_heads_and_names_its_base(lora_artifact):
    artifact, _ = lora_artifact
    files = sorted(p.relative_to(artifact).as_posix() for p in artifact.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/heads.safetensors",
        "finance.json",
        "manifest.json",
    ]
    manifest = json.loads((artifact / "manifest.json").read_text())
    section = manifest["adapter"]
    _, base = _base()
    assert section["base_model"] == "random:bert-tiny"
    assert section["base_sha256"] == base_weights_hash(base)
    assert manifest["recipe"]["recipe"] == "finetune" and "adapter" in manifest["recipe"]["reason"]
    weights = sum(
        (artifact / "adapter" / n).stat().st_size
        for n in ("adapter_model.safetensors", "heads.safetensors")
    )
    base_bytes = sum(v.numel() * v.element_size() for v in base.state_dict().values())
    assert weights < 0.05 * base_bytes
    assert "from peft import PeftModel" in (artifact / "README.md").read_text()


def test_training_left_the_base_untouched_and_the_adapter_serves(lora_artifact):
    artifact, _ = lora_artifact
    runtime = _load(artifact)
    body = runtime.scorer.task.backbone
    assert base_weights_hash(body) == base_weights_hash(_base()[1])
    assert any(torch.count_nonzero(p) for n, p in body.named_parameters() if "lora_B" in n)
    predictions = runtime.predict([{"text": t} for t in TEXTS])
    assert [set(p["probs"]) for p in predictions] == [{"negative", "neutral", "positive"}] * 2
    assert runtime.info()["adapter"]["base_model"] == "random:bert-tiny"


def test_an_adapter_artifact_on_another_base_is_refused_with_both_hashes(lora_artifact, tmp_path):
    artifact, _ = lora_artifact
    copy = Path(shutil.copytree(artifact, tmp_path / "copy"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["adapter"]["base_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError) as error:
        _load(copy)
    message = str(error.value)
    assert "0" * 64 in message and base_weights_hash(_base()[1]) in message
    assert "random:bert-tiny" in message


def test_lora_merge_writes_a_plain_artifact_with_the_same_logits(lora_artifact, trained, tmp_path):
    artifact, data = lora_artifact
    section = compress_artifact(
        fs.VERTICAL, artifact, tmp_path / "merged", "lora-merge", data, measure=False
    )
    merged = tmp_path / "merged"
    assert (merged / "model" / "model.safetensors").is_file() and not (merged / "adapter").exists()
    manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["adapter"] is None and manifest["compression"]["method"] == "lora-merge"
    assert section["params"]["merged_adapter"]["base_model"] == "random:bert-tiny"
    assert section["params"]["check"]["max_abs_logit_diff"] <= MERGE_ATOL
    want, got = _logits(_load(artifact)), _logits(_load(merged))
    assert got.shape == want.shape == (2, 3)
    assert (want - got).abs().max() <= MERGE_ATOL
    with pytest.raises(ArtifactError, match="not an adapter artifact"):
        compress_artifact(
            fs.VERTICAL, trained("finance_sentiment"), tmp_path / "no", "lora-merge", data
        )


# --- finance_sentiment: many tenants on one base ---------------------------------------------


def _tenant(artifact: Path, folder: Path, seed: int) -> Path:
    """A copy of the adapter artifact whose adapter and heads are redrawn (another customer)."""
    shutil.copytree(artifact, folder)
    generator = torch.Generator().manual_seed(seed)
    for name in ("adapter_model.safetensors", "heads.safetensors"):
        path = folder / "adapter" / name
        tensors = {
            k: v + torch.randn(v.shape, generator=generator) * 0.5
            for k, v in load_file(path).items()
        }
        save_file(tensors, str(path))
    return folder


@pytest.fixture
def tenants(lora_artifact, tmp_path):
    """The tenants folder with `acme` and `bolt`, and a client serving it (cache size 1)."""
    artifact, _ = lora_artifact
    folder = tmp_path / "tenants"
    for seed, name in enumerate(("acme", "bolt"), start=1):
        _tenant(artifact, folder / name, seed)
    settings = FinanceSettings(
        device="cpu", tenants_dir=folder, tenant_cache_size=1, finance_db=tmp_path / "m.db"
    )
    with TestClient(create_app(fs.VERTICAL, artifact, settings)) as client:
        yield folder, client


def _score(client, tenant: str | None = None):
    headers = {"X-Tenant": tenant} if tenant else {}
    return client.post(f"{URL}/score", json={"texts": TEXTS}, headers=headers)


def _probs(response) -> list[float]:
    """Every text's class probabilities, one flat list."""
    assert response.status_code == 200, response.text
    return [p for r in response.json()["results"] for p in r["probs"].values()]


def test_tenants_get_their_own_outputs_and_the_base_stays_untouched(tenants):
    folder, client = tenants
    runtime = client.app.state.runtime
    digest = base_weights_hash(runtime.scorer.task.backbone)
    main, acme, bolt = (
        _probs(_score(client)),
        _probs(_score(client, "acme")),
        _probs(_score(client, "bolt")),
    )
    assert acme != bolt and acme != main and bolt != main
    assert runtime.tenants.cache.keys() == ["bolt"]  # cache size 1: acme was evicted
    assert _probs(_score(client, "acme")) == pytest.approx(acme, abs=EXACT)  # reloaded
    assert _probs(_score(client)) == pytest.approx(main, abs=EXACT)
    assert base_weights_hash(runtime.scorer.task.backbone) == digest


def test_a_missing_or_unfit_tenant_gets_a_clear_4xx(tenants, trained):
    folder, client = tenants
    response = _score(client, "nobody")
    assert response.status_code == 404 and "'nobody'" in response.json()["detail"]
    assert _score(client, "../acme").status_code == 422
    shutil.copytree(trained("finance_sentiment"), folder / "full")
    response = _score(client, "full")
    assert response.status_code == 409 and "not an adapter artifact" in response.json()["detail"]
    manifest = json.loads((folder / "acme" / "manifest.json").read_text())
    manifest["adapter"]["base_sha256"] = "f" * 64
    (folder / "acme" / "manifest.json").write_text(json.dumps(manifest))
    response = _score(client, "acme")
    assert response.status_code == 409 and "f" * 64 in response.json()["detail"]


def test_tenants_are_added_and_removed_without_a_restart_and_the_lru_evicts(lora_artifact, tenants):
    artifact, _ = lora_artifact
    folder, client = tenants
    assert _score(client, "cato").status_code == 404
    _tenant(artifact, folder / "cato", seed=3)  # a new customer, copied in while serving
    assert _score(client, "cato").status_code == 200
    _probs(_score(client, "acme"))
    info = client.get(f"{URL}/tenants").json()
    assert info["available"] == ["acme", "bolt", "cato"] and info["loaded"] == ["acme"]
    assert info["capacity"] == 1 and info["evictions"] >= 1
    shutil.rmtree(folder / "acme")
    assert client.post(f"{URL}/tenants/rescan").json()["removed"] == ["acme"]
    assert client.get(f"{URL}/tenants").json()["loaded"] == []
    assert _score(client, "acme").status_code == 404


def test_rows_of_different_tenants_share_a_batch_and_match_their_own_scores(tenants):
    _, client = tenants
    pool = client.app.state.runtime.tenants
    items = [(TEXTS[0], "acme"), (TEXTS[0], "bolt"), (TEXTS[1], None), (TEXTS[1], "acme")]
    by_parts = pool.score(items)  # more tenants than the cache holds (1): run in parts
    for (text, name), result in zip(items, by_parts, strict=True):
        alone = pool.score([(text, name)])[0]
        assert result["probs"] == pytest.approx(alone["probs"], abs=EXACT)
    pool.cache.capacity = 2
    main, acme, bolt = pool.resolve(None), pool.resolve("acme"), pool.resolve("bolt")
    mixed = score_mixed(main.scorer, [(acme, TEXTS[0]), (bolt, TEXTS[0]), (main, TEXTS[1])])
    for tenant, text, result in zip(
        (acme, bolt, main), (TEXTS[0], TEXTS[0], TEXTS[1]), mixed, strict=True
    ):
        alone = score_mixed(main.scorer, [(tenant, text)])[0]
        assert result["probs"] == pytest.approx(alone["probs"], abs=EXACT)
    assert mixed[0]["probs"] != pytest.approx(mixed[1]["probs"], abs=1e-3)


def test_a_service_without_tenants_answers_404_for_a_tenant(lora_artifact, tmp_path):
    artifact, _ = lora_artifact
    settings = FinanceSettings(device="cpu", finance_db=tmp_path / "m.db")
    with TestClient(create_app(fs.VERTICAL, artifact, settings)) as client:
        response = _score(client, "acme")
        assert response.status_code == 404 and "'acme'" in response.json()["detail"]
        assert client.get(f"{URL}/tenants").status_code == 404
        assert _score(client).status_code == 200
