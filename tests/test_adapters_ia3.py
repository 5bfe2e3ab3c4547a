"""IA3 adapters (`adapter.method=ia3`): core wrapping, a finance adapter artifact, merge, and
the refusal to serve IA3 tenants (peft batches several adapters together for LoRA only)."""

from __future__ import annotations

import json

import pytest
import torch

import finance_sentiment as fs
from shared.adapters import AdapterConfig, apply_lora, base_weights_hash, merge_lora
from shared.compression import compress_artifact
from shared.config import load_config
from shared.errors import ArtifactError
from shared.models import load_model
from shared.registry import build_settings, load_runtime

MERGE_ATOL = 1e-4


def _base():
    return load_model("random:bert-tiny", "text-backbone")


def _hidden(body, tokenizer):
    enc = tokenizer(["Profit fell.", "Shares rose sharply"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        return body(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]


def test_ia3_trains_only_its_scaling_vectors_and_starts_as_the_base():
    tokenizer, body = _base()
    before, digest = _hidden(body.eval(), tokenizer), base_weights_hash(body)
    model = apply_lora(body, AdapterConfig(method="ia3")).eval()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".ia3_l." in n for n in trainable)
    # per layer: key 32 + value 32 outputs, and the inputs of both `output.dense` layers peft
    # picks for BERT (attention 32, feed-forward 64): 320, against LoRA r=8's 2,048 here
    assert sum(p.numel() for p in trainable.values()) == 2 * (32 + 32 + 32 + 64)
    assert torch.equal(_hidden(model, tokenizer), before)  # the vectors start at one
    assert base_weights_hash(model) == digest


def test_a_changed_ia3_adapter_changes_the_output_and_merges_into_plain_weights():
    tokenizer, body = _base()
    model = apply_lora(body, AdapterConfig(method="ia3")).eval()
    base = _hidden(model, tokenizer)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".ia3_l." in name:
                param.uniform_(0.5, 1.5)
    want = _hidden(model, tokenizer)
    assert (want - base).abs().max() > 1e-3
    merged = merge_lora(model)
    assert not any("ia3_" in k for k in merged.state_dict())
    assert (_hidden(merged, tokenizer) - want).abs().max() <= MERGE_ATOL


@pytest.fixture(scope="module")
def ia3_artifact(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs_ia3")
    data = fs.example_data(root / "data")
    overrides = {
        **fs.VERTICAL.smoke_overrides,
        "adapter": {"method": "ia3"},
        "trainer": {"max_steps": 4, "epochs": 1, "batch_size": 8, "progress": False},
    }
    return fs.train(load_config(fs.FinanceConfig, overrides=overrides), data, root / "run"), data


def _load(artifact, **settings):
    return load_runtime(
        fs.VERTICAL, artifact, build_settings(fs.VERTICAL, device="cpu", **settings)
    )


def test_an_ia3_artifact_names_its_method_serves_and_merges(ia3_artifact, tmp_path):
    artifact, data = ia3_artifact
    section = json.loads((artifact / "manifest.json").read_text())["adapter"]
    assert section["method"] == "ia3" and "r" not in section
    assert section["adapter_parameters"] < 0.01 * section["base_parameters"]
    runtime = _load(artifact)
    assert runtime.predict([{"text": "Profit fell."}])[0]["label"]
    compress_artifact(fs.VERTICAL, artifact, tmp_path / "merged", "lora-merge", data, measure=False)
    merged = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert merged["compression"]["params"]["check"]["max_abs_logit_diff"] <= MERGE_ATOL


def test_ia3_tenants_are_refused_with_the_reason(ia3_artifact, tmp_path):
    artifact, _ = ia3_artifact
    (tmp_path / "tenants").mkdir()
    with pytest.raises(ArtifactError, match="ia3 adapter: tenants share one base through lora"):
        _load(artifact, tenants_dir=tmp_path / "tenants")
