"""The finance artifact in standard formats: `model/` opens with transformers' Auto classes."""

from __future__ import annotations

import numpy as np
import torch

from shared.registry import get_vertical, load_runtime

TEXTS = [
    "Norvale Bank shares plunge 12% after profit warning",
    "Quillon Systems raises full-year guidance on robust cloud revenue",
    "The board meets on Tuesday",
]


def test_model_folder_loads_with_auto_classes_to_the_same_predictions(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    artifact = trained("finance_sentiment")
    runtime = load_runtime(get_vertical("finance_sentiment"), artifact)
    served = runtime.predict([{"text": t} for t in TEXTS])

    folder = str(artifact / "model")
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    with torch.inference_mode():
        enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
        probs = model.eval()(**enc).logits.softmax(-1).numpy()
    expected = np.array([[r["probs"][model.config.id2label[i]] for i in range(3)] for r in served])
    np.testing.assert_allclose(probs, expected, atol=1e-5)

    classify = pipeline("text-classification", model=folder, trust_remote_code=True)
    assert [r["label"] for r in classify(TEXTS)] == [r["label"] for r in served]


def test_artifact_keeps_no_separate_head_file(trained):
    artifact = trained("finance_sentiment")
    assert not (artifact / "heads.safetensors").exists()
    assert (artifact / "model" / "modeling_verticals.py").is_file()


def test_labels_option_must_name_the_schema_sentiments():
    import pytest

    from finance_sentiment.config import FinanceConfig
    from shared.config import load_config
    from shared.errors import VerticalsError

    assert (
        load_config(FinanceConfig, None, ["labels=[positive,neutral,negative]"]).labels[0]
        == "positive"
    )
    with pytest.raises(VerticalsError, match="labels: .*sentiment column's values"):
        load_config(FinanceConfig, None, ["labels=[bearish,neutral,bullish]"])
