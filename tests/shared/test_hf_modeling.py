"""The exported mean-pooled classifier (`shared.hf_modeling`) on bodies with and without SDPA."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, MPNetConfig

from shared.hf_modeling import MeanPooledForSequenceClassification

SMALL = {
    "vocab_size": 64,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "num_labels": 3,
}


@pytest.mark.parametrize(
    ("config", "attention"),
    [(MPNetConfig(**SMALL), "eager"), (BertConfig(**SMALL), "sdpa")],
    ids=["mpnet-no-sdpa", "bert-sdpa"],
)
def test_the_classifier_builds_on_any_body_in_the_attention_it_supports(config, attention):
    torch.manual_seed(0)
    model = MeanPooledForSequenceClassification(config).eval()  # MPNet refuses SDPA
    assert model.backbone.config._attn_implementation == attention
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    logits = model(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    padded = model(input_ids=ids[1:, :3], attention_mask=mask[1:, :3]).logits
    assert torch.allclose(logits[1:], padded, atol=1e-5)  # padding does not move the mean
