"""Dialogue acts: the classifier on the real MiniLM bot, its mechanics, config and storage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from customer_service.config import CustomerServiceConfig
from customer_service.dialogue_acts import (
    DEFAULT_ACT_EXAMPLES,
    DEFAULT_REPLIES,
    NONE,
    ActClassifier,
    merge_examples,
    negative_examples,
    train_act_classifier,
)
from shared.artifacts import load_weights
from shared.config import load_config
from shared.errors import DataError, VerticalsError
from shared.models import embed_texts

ACTS = {
    "hello": "greet",
    "hi there": "greet",
    "hey, good morning": "greet",
    "ok thanks": "thank",
    "thank you so much for that": "thank",
    "thanks, bye": "goodbye",
    "cheers, see you": "goodbye",
    "agent please": "human",
    "can I talk to a human": "human",
    "could I get a real agent": "human",
    "I need to speak with somebody": "human",
    "yes": "affirm",
    "yeah sure": "affirm",
    "no": "deny",
    "nope, not that": "deny",
}
QUESTIONS = [
    "how do I activate my card",
    "what about savings?",
    "and for my credit card?",
    "what about my debit card",
    "Hi! How do I freeze my debit card?",
    "hi, my card was stolen this morning",
    "thanks, and how do I order a new card?",
    "talk to someone about a mortgage",
    "what's the weather like in Paris tomorrow?",
]


@pytest.mark.slow
def test_the_minilm_bot_reads_acts_and_leaves_questions_alone(cs_minilm_bot):
    bot = cs_minilm_bot
    texts = list(ACTS) + QUESTIONS
    vectors = embed_texts(bot.encoder, texts)
    read = {t: bot.classify_act(t, v)[0] for t, v in zip(texts, vectors, strict=True)}
    assert {t: read[t] for t in ACTS} == ACTS
    assert {t: read[t] for t in QUESTIONS} == dict.fromkeys(QUESTIONS)


@pytest.mark.slow
def test_the_demo_kb_has_no_intent_for_acts_so_chat_replies_to_each_act(cs_minilm_bot):
    bot = cs_minilm_bot
    for i, (text, act) in enumerate(ACTS.items()):
        out = bot.chat(f"acts-kb-{i}", text)
        assert out.get("act") == act, (text, out)


def _claim(
    bot, act="thank", act_confidence=0.9, intent="thank_you", confidence=0.95, in_scope=None
):
    from customer_service.scoring import Decision
    from customer_service.session import Session

    threshold = bot.calibration.threshold
    decision = Decision(
        "a1",
        intent,
        confidence,
        via="intent",
        in_scope=threshold + 0.1 if in_scope is None else in_scope,
    )
    return bot.kb_claims(decision, act, act_confidence, Session("s"))


def test_a_kb_intent_surer_than_the_act_answers_it_but_never_a_request_for_a_person(cs_bot):
    from customer_service.scoring import Decision
    from customer_service.session import Session

    assert _claim(cs_bot)  # the customer's own thank_you intent, in scope and surer
    assert not _claim(cs_bot, confidence=0.8)  # the act classifier is surer
    assert not _claim(cs_bot, intent=None)  # an answer without an intent: not a trained intent
    assert not _claim(cs_bot, in_scope=cs_bot.calibration.threshold - 0.01)  # out of scope
    assert not _claim(cs_bot, act="human", act_confidence=0.1)  # a person is always a person
    waiting = Session("w")
    waiting.pending_slots = ["card_type"]
    decision = Decision("a1", "no", 0.99, via="intent", in_scope=1.0)
    assert not cs_bot.kb_claims(decision, "deny", 0.5, waiting)  # "no" to the bot's question


def _bag_of_words(vocabulary: list[str]):
    """A deterministic stand-in encoder: normalised word counts over a vocabulary."""

    def embed(texts: list[str]) -> np.ndarray:
        rows = np.array(
            [[t.lower().replace(",", " ").split().count(w) for w in vocabulary] for t in texts],
            dtype=np.float32,
        )
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)

    return embed


def test_training_learns_acts_against_questions_and_the_threshold_applies():
    embed = _bag_of_words(["hello", "hi", "bye", "card", "freeze", "my", "lost"])
    acts = {"greet": ["hello", "hi", "hi hello"], "goodbye": ["bye", "bye bye"]}
    clf = train_act_classifier(embed, acts, ["freeze my card", "lost my card", "my card"])
    assert sorted(clf.labels) == ["goodbye", "greet", NONE]
    assert clf.classify(embed(["hello"])[0])[0] == "greet"
    assert clf.classify(embed(["bye"])[0])[0] == "goodbye"
    assert clf.classify(embed(["freeze my card"])[0])[0] is None
    clf.threshold = 0.999  # no act is that sure: every message is a question
    act, p = clf.classify(embed(["hello"])[0])
    assert act is None and 0.5 < p < 0.999
    assert train_act_classifier(embed, {"greet": []}, ["my card"]) is None


def test_a_single_act_gives_a_two_class_softmax():
    embed = _bag_of_words(["hello", "card"])
    clf = train_act_classifier(embed, {"greet": ["hello"]}, ["card"])
    assert clf.weight.shape == (2, 2) and clf.classify(embed(["hello"])[0])[0] == "greet"
    assert clf.classify(embed(["card"])[0])[0] is None


def test_negatives_hold_the_questions_polite_prefixes_and_slot_follow_ups():
    out = negative_examples(
        ["how do I freeze my card"], DEFAULT_ACT_EXAMPLES, {"card_type": ["credit"]}
    )
    assert out[0] == "how do I freeze my card"
    assert any(t.endswith(", how do I freeze my card") for t in out[1:])
    assert "and for my credit?" in out


def test_the_data_file_adds_examples_and_an_act_without_reply_is_named():
    table = pd.DataFrame({"text": ["howdy partner", "are you a robot"], "act": ["greet", "bot"]})
    table.attrs["source"] = "data/dialogue_acts.csv"
    merged = merge_examples(DEFAULT_ACT_EXAMPLES, {**DEFAULT_REPLIES, "bot": "I am a bot."}, table)
    assert merged["greet"][-1] == "howdy partner" and merged["bot"] == ["are you a robot"]
    assert len(merged["greet"]) == len(DEFAULT_ACT_EXAMPLES["greet"]) + 1
    with pytest.raises(DataError) as err:
        merge_examples(DEFAULT_ACT_EXAMPLES, DEFAULT_REPLIES, table)
    message = str(err.value)
    assert "data/dialogue_acts.csv: row 2, column 'act': 'bot' has no reply" in message
    assert "dialogue.replies.bot" in message and "\n" not in message


def test_a_config_override_replaces_one_act_and_keeps_the_others():
    cfg = load_config(
        CustomerServiceConfig,
        overrides=["dialogue.act_examples.greet=[ahoy]", "dialogue.replies.greet=Ahoy!"],
    )
    assert cfg.dialogue.act_examples["greet"] == ["ahoy"]
    assert cfg.dialogue.act_examples["human"] == DEFAULT_ACT_EXAMPLES["human"]
    assert cfg.dialogue.replies == {**DEFAULT_REPLIES, "greet": "Ahoy!"}
    with pytest.raises(VerticalsError, match="no reply for act.*joke.*dialogue.replies.joke"):
        load_config(CustomerServiceConfig, overrides=["dialogue.act_examples.joke=[a joke]"])


def test_training_shows_progress_by_default_and_the_smoke_run_does_not():
    from customer_service import SMOKE_OVERRIDES

    assert CustomerServiceConfig().trainer.progress is True
    assert (
        load_config(CustomerServiceConfig, overrides=dict(SMOKE_OVERRIDES)).trainer.progress
        is False
    )


def test_the_artifact_stores_act_weights_as_safetensors_and_labels_in_bot_json(cs_trained):
    _, artifact = cs_trained
    bot = json.loads((artifact / "bot.json").read_text())
    labels = bot["dialogue"]["act_labels"]
    assert set(labels) == {*DEFAULT_ACT_EXAMPLES, NONE}
    assert bot["dialogue"]["replies"]["human"] == DEFAULT_REPLIES["human"]
    clf = ActClassifier.load(artifact / "acts.safetensors", labels, 0.5)
    dim = load_weights(artifact / "head.safetensors")["weight"].shape[1]  # the encoder's
    assert clf.weight.shape == (len(labels), dim) and clf.bias.shape == (len(labels),)
    assert not list(artifact.rglob("*.pkl"))


def test_a_bad_dialogue_acts_file_fails_before_training_with_file_and_row(tmp_path):
    from customer_service.kb_data import write_demo_data
    from customer_service.schemas import load_dataset
    from customer_service.training import train

    data = write_demo_data(tmp_path / "data")
    rows = pd.DataFrame({"text": ["howdy partner", "tell me a joke"], "act": ["greet", "joke"]})
    rows.to_csv(data / "dialogue_acts.csv", index=False)
    assert load_dataset(data).acts.to_dict("list") == rows.to_dict("list")
    cfg = load_config(CustomerServiceConfig, overrides={"model": "random:bert-tiny"})
    with pytest.raises(DataError, match=r"dialogue_acts.csv: row 2, column 'act': 'joke'"):
        train(cfg, data, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_act_classifier_reports_its_held_out_accuracy():
    import numpy as np

    from customer_service.dialogue_acts import train_act_classifier

    rng = np.random.default_rng(0)
    centres = {
        "greet": rng.normal(size=16),
        "thank": rng.normal(size=16),
        "none": rng.normal(size=16),
    }

    def embed(texts, noise=0.1):
        rows = [centres[t.split(":")[0]] + noise * rng.normal(size=16) for t in texts]
        return np.stack([r / np.linalg.norm(r) for r in rows])

    examples = {
        "greet": [f"greet:{i}" for i in range(12)],
        "thank": [f"thank:{i}" for i in range(12)],
    }
    negatives = [f"none:{i}" for i in range(12)]
    clear = train_act_classifier(embed, examples, negatives)
    assert clear.cv_accuracy is not None and clear.cv_accuracy > 0.95

    def noise_only(texts):  # no signal: held-out accuracy falls to about chance
        rows = rng.normal(size=(len(texts), 16))
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    blind = train_act_classifier(noise_only, examples, negatives)
    assert blind.cv_accuracy < 0.7
    few = train_act_classifier(embed, {"greet": ["greet:0", "greet:1"]}, negatives)
    assert few.cv_accuracy is None  # two examples cannot be folded five ways
