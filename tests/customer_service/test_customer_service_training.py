"""Training: the epoch evaluator's primary metric, what the artifact records of the run, and one
definition of the intent head shared by training, calibration and serving."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

TEXTS = [
    "how do I freeze my debit card",
    "I would like to close my savings account",
    "what is the interest rate on a personal loan",
]


@pytest.fixture(scope="module")
def demo_parts(tmp_path_factory):
    """(task with an intent head, dataset, validation pairs, intent ids) on the tiny random BERT."""
    from customer_service.kb_data import write_demo_data
    from customer_service.retrieval import BotTask
    from customer_service.schemas import load_dataset
    from shared.models import load_model

    data = load_dataset(write_demo_data(tmp_path_factory.mktemp("cs_eval") / "data"))
    intents = sorted(set(data.kb["intent"]) - {""})
    encoder = load_model("random:bert-tiny", "sentence-encoder")
    encoder.max_seq_length = 16
    task = BotTask(encoder, len(intents)).eval()
    val = data.pairs.head(12).reset_index(drop=True)
    return task, data, val, {name: i for i, name in enumerate(intents)}


def test_evaluator_monitors_intent_accuracy_else_retrieval_accuracy_and_renames_nothing(
    demo_parts,
):
    from customer_service.recipes import epoch_evaluator
    from customer_service.retrieval import BotTask

    task, data, val, intent_id = demo_parts
    assert (val["intent"] != "").all()
    evaluator = epoch_evaluator(task, data, val, intent_id)
    metrics = evaluator(task)
    assert evaluator.primary_metric == "intent_accuracy" and evaluator.greater_is_better
    assert set(metrics) == {"retrieval_accuracy", "intent_accuracy"}  # no "accuracy" alias
    assert all(0.0 <= v <= 1.0 for v in metrics.values())

    unlabelled = epoch_evaluator(task, data, val.assign(intent=""), intent_id)
    assert unlabelled.primary_metric == "retrieval_accuracy"
    assert set(unlabelled(task)) == {"retrieval_accuracy"}
    headless = BotTask(task.backbone, 0)
    assert epoch_evaluator(headless, data, val, intent_id).primary_metric == "retrieval_accuracy"
    assert epoch_evaluator(task, data, val.iloc[:0], intent_id) is None  # no val: no evaluator


def test_artifact_records_the_monitored_metric_and_best_epoch(cs_trained):
    from shared.artifacts import read_manifest

    _, artifact = cs_trained
    training = read_manifest(artifact)["training"]
    assert training["monitor"] == "val_intent_accuracy" and training["monitor_mode"] == "max"
    history = [
        json.loads(line)
        for line in (artifact.parent / "run" / "history.jsonl").read_text().splitlines()
        if line.strip()
    ]
    rows = [r for r in history if "val_intent_accuracy" in r]
    assert rows and not any("val_accuracy" in r for r in history)
    best = max(rows, key=lambda r: r["val_intent_accuracy"])
    assert training["best"] == pytest.approx(best["val_intent_accuracy"])
    assert training["best_epoch"] == best["epoch"] and training["steps"] == 2


def test_served_intent_logits_equal_the_training_tasks_for_the_same_texts(cs_trained, monkeypatch):
    """Training (torch, in `BotTask.forward`), calibration (`evaluation.intent_logits`) and the
    bot (numpy) must compute the head identically: a scale changed in one place only breaks it."""
    import customer_service.bot as bot_module
    from customer_service import VERTICAL
    from customer_service import evaluation as ev
    from customer_service.retrieval import BotTask, make_collate
    from shared.artifacts import load_weights
    from shared.models import embed_texts, load_model
    from shared.registry import build_settings, load_runtime

    _, artifact = cs_trained
    bot = load_runtime(
        VERTICAL,
        artifact,
        build_settings(VERTICAL, device="cpu", customer_service_precision="fp32"),
    )
    seen, decide = [], bot_module.decide

    def recording_decide(hits, logits, *args):
        seen.append(logits)
        return decide(hits, logits, *args)

    monkeypatch.setattr(bot_module, "decide", recording_decide)
    for i, text in enumerate(TEXTS):  # new sessions, no follow-ups: one decision per message
        bot.chat(f"logits-{i}", text)
    served = np.stack(seen)

    encoder = load_model(str(artifact / "encoder"), "sentence-encoder")
    task = BotTask(encoder, len(bot.intents)).eval()
    task.head.load_state_dict(load_weights(artifact / "head.safetensors"))
    with torch.no_grad():
        trained = task(make_collate(encoder)([(t, "", "", -100) for t in TEXTS]))["logits"]
    assert served.shape == (len(TEXTS), len(bot.intents))
    np.testing.assert_allclose(served, trained.numpy(), rtol=1e-4, atol=1e-4)
    calibrated = ev.intent_logits(task, embed_texts(encoder, TEXTS))
    np.testing.assert_allclose(calibrated, trained.numpy(), rtol=1e-4, atol=1e-4)
