"""The bot's dialogue logic (follow-ups, slots, handoffs) and KB edits, on a tiny trained artifact.

Retrieval decisions are pinned with a stub where a test is about what the bot does with them, so
the assertions do not depend on what a two-step random model happens to retrieve.
"""

from __future__ import annotations

import numpy as np
import pytest

from customer_service.replies import HANDOFF_ANSWER
from customer_service.scoring import Decision
from shared.errors import InputError


def _pin(bot, monkeypatch, by_query: dict[str, tuple[str | None, float]]):
    """Makes `_decide` answer `by_query[query]` = (answer_id, confidence); anything else gets (None, 0)."""
    kb = bot.kb_snapshot()

    def decide(vector, query, kb_, index, k=20):
        answer_id, conf = by_query.get(query, (None, 0.0))
        intent = kb.answers[answer_id]["intent"] if answer_id else None
        return Decision(answer_id, intent, conf, [], "intent")

    monkeypatch.setattr(bot, "_decide", decide)
    bot.calibration.threshold = 0.5


def test_template_is_filled_from_the_message_and_then_from_earlier_turns(cs_bot, monkeypatch):
    _pin(
        cs_bot,
        monkeypatch,
        {"my credit card was stolen": ("A002", 0.9), "how do I order a replacement": ("A004", 0.8)},
    )
    first = cs_bot.chat("s1", "my credit card was stolen")
    assert first["answer"].startswith("We are sorry. Your credit card is now blocked")
    second = cs_bot.chat("s1", "how do I order a replacement")
    assert "replacement credit card" in second["answer"] and second["missing_slots"] == []
    assert second["slots"] == {"card_type": "credit"}


def test_missing_slot_asks_which_one(cs_bot, monkeypatch):
    _pin(cs_bot, monkeypatch, {"how do I freeze my card": ("A001", 0.9)})
    out = cs_bot.chat("s2", "how do I freeze my card")
    assert (
        out["missing_slots"] == ["card_type"]
        and "debit, credit, prepaid, business" in out["answer"]
    )
    assert not out["handoff"]


def test_follow_up_reuses_the_previous_answer_with_the_new_slot(cs_bot, monkeypatch):
    _pin(cs_bot, monkeypatch, {"how do I freeze my debit card": ("A001", 0.95)})
    cs_bot.chat("s3", "how do I freeze my debit card")
    assert cs_bot.plan(cs_bot.sessions.get("s3"), "and for my credit card?") == [
        "and for my credit card?",
        "how do I freeze my debit card and for my credit card?",
    ]
    out = cs_bot.chat("s3", "and for my credit card?")
    assert (
        out["answer_id"] == "A001"
        and out["context_used"]
        and "freeze your credit card" in out["answer"]
    )


def test_contextual_reading_wins_when_the_message_alone_is_out_of_scope_or_less_sure(
    cs_bot, monkeypatch
):
    _pin(
        cs_bot,
        monkeypatch,
        {
            "I sent money to the wrong person": ("A026", 0.9),
            "I sent money to the wrong person and how long does it take?": ("A026", 0.9),
            "and how long does it take?": ("A023", 0.3),  # alone: below the 0.5 threshold
            "I sent money to the wrong person and for my joint account?": ("A026", 0.8),
            "and for my joint account?": ("A020", 0.6),  # alone: in scope, but less sure
            "I sent money to the wrong person and what about an overdraft?": ("A026", 0.7),
            "and what about an overdraft?": ("A019", 0.95),  # alone: surer than in context
        },
    )
    cs_bot.chat("s4", "I sent money to the wrong person")
    out = cs_bot.chat("s4", "and how long does it take?")
    assert out["answer_id"] == "A026" and out["context_used"]
    cs_bot.chat("s4b", "I sent money to the wrong person")
    out = cs_bot.chat("s4b", "and for my joint account?")
    assert out["answer_id"] == "A026" and out["context_used"]
    cs_bot.chat("s4c", "I sent money to the wrong person")
    out = cs_bot.chat("s4c", "and what about an overdraft?")
    assert out["answer_id"] == "A019" and not out["context_used"]


def test_low_confidence_hands_off_with_the_reason(cs_bot, monkeypatch):
    _pin(cs_bot, monkeypatch, {"what's the weather tomorrow": ("A043", 0.2)})
    out = cs_bot.chat("s5", "what's the weather tomorrow")
    assert out["handoff"] and out["answer"] == HANDOFF_ANSWER
    assert (
        "0.20 is below the threshold 0.50" in out["handoff_reason"]
        and "out of scope" in out["handoff_reason"]
    )
    human = cs_bot.chat("s5", "let me talk to a real person")
    assert human["handoff"] and human["handoff_reason"] == "the customer asked for a human"


def test_messages_are_masked_before_they_are_stored(cs_bot, monkeypatch):
    _pin(cs_bot, monkeypatch, {})
    cs_bot.chat("s6", "my card 4111 1111 1111 1111 and mail a@b.com")
    turns = cs_bot.sessions.get("s6").turns
    assert turns[0]["text"] == "my card [CARD] and mail [EMAIL]"


def test_kb_add_change_remove_without_retraining(cs_bot, cs_artifact):
    from customer_service import VERTICAL
    from shared.registry import build_settings

    text = "Larkspur Bank closes for the winter holiday on the 24th."
    out = cs_bot.add_answers(
        [
            {
                "answer_id": "NEW",
                "answer": text,
                "title": "Holiday",
                "questions": ["are you open at christmas"],
            }
        ]
    )
    assert out["answers"] == 56
    assert cs_bot.search("Holiday. " + text, k=1)["results"][0]["answer_id"] == "NEW"
    with pytest.raises(InputError) as err:
        cs_bot.add_answers([{"answer_id": "NEW", "answer": "dup"}])
    assert err.value.status_code == 409
    cs_bot.update_answer("NEW", {"answer": "We are open every day.", "questions": []})
    assert cs_bot.kb_snapshot().answers["NEW"]["answer"] == "We are open every day."
    kinds = [
        k
        for a, k in zip(
            cs_bot.kb_snapshot().entry_ids, cs_bot.kb_snapshot().entry_kinds, strict=True
        )
        if a == "NEW"
    ]
    assert sorted(kinds) == ["answer", "paraphrase"]  # the paraphrase survived the change
    cs_bot.remove_answer("NEW")
    with pytest.raises(InputError) as err:
        cs_bot.remove_answer("NEW")
    assert err.value.status_code == 404
    # persisted: a restart sees the same KB
    reloaded = VERTICAL.load(cs_artifact, build_settings(VERTICAL, device="cpu"))
    assert (
        "NEW" not in reloaded.kb_snapshot().answers and reloaded.kb_snapshot().version == "v000004"
    )


def test_a_failed_kb_update_leaves_the_old_kb_working(cs_bot, monkeypatch):
    before = cs_bot.kb_snapshot()

    def broken(root, kb):
        raise OSError("disk full")

    monkeypatch.setattr("customer_service.live_kb.save_version", broken)
    with pytest.raises(InputError) as err:
        cs_bot.add_answers([{"answer_id": "X", "answer": "x"}])
    assert err.value.status_code == 503 and "previous knowledge base" in str(err.value)
    assert cs_bot.kb_snapshot() is before
    assert cs_bot.chat("s7", "I lost my card")["answer_id"] in before.answers


def test_predict_rows_share_sessions_and_reject_empty_messages(cs_bot):
    rows = [{"session_id": "p", "message": "I lost my card"}, {"message": "hello"}]
    out = cs_bot.predict(rows)
    assert len(out) == 2 and all(isinstance(o["confidence"], float) for o in out)
    assert cs_bot.sessions.get("p") is not None
    with pytest.raises(InputError, match="row 1: 'message' is empty"):
        cs_bot.predict([{"message": "  "}])


def test_artifact_has_calibration_and_no_test_question_in_the_index(cs_trained):
    from customer_service.config import CustomerServiceConfig
    from customer_service.kb_store import load_current
    from customer_service.schemas import load_dataset
    from customer_service.training import clean_pairs, split_pairs
    from shared.artifacts import read_manifest

    data, artifact = cs_trained
    manifest = read_manifest(artifact)
    cal = manifest["calibration"]
    assert (
        0.0 <= cal["threshold"] <= 1.0
        and cal["intent_temperature"] > 0
        and "oos_recall" in cal["threshold_source"]
        and len(cal["in_scope_weights"]) == 3
        and list(cal["in_scope_weights"]) != [1.0, 0.0, 0.0]  # fitted on the OOS val questions
    )
    metrics = manifest["metrics"]
    keys = ("test_accuracy", "test_in_scope_accuracy", "test_oos_recall", "test_oos_auroc")
    for key in (*keys, "test_retrieval_mrr"):
        assert 0.0 <= metrics[key] <= 1.0
    kb = load_current(artifact)
    paraphrases = {
        t for t, k in zip(kb.entry_texts, kb.entry_kinds, strict=True) if k == "paraphrase"
    }
    # The split training drew (same data, same config), to check what the index holds.
    cfg = CustomerServiceConfig.model_validate(manifest["config"])
    splits = split_pairs(clean_pairs(load_dataset(data).pairs), cfg)
    assert [float(len(splits[s])) for s in ("train", "val", "test")] == [
        metrics["n_train"],
        metrics["n_val"],
        metrics["n_test"],
    ]
    train_questions = set(splits["train"]["question"])
    held_out = (set(splits["test"]["question"]) | set(splits["val"]["question"])) - train_questions
    assert paraphrases == train_questions  # every training question, and only those
    assert len(held_out) > 50 and not held_out & set(kb.entry_texts)
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] >= 300
    assert np.allclose(np.linalg.norm(kb.vectors, axis=1), 1.0, atol=1e-4)


def test_evaluate_reports_accuracy_and_handoff_rate(cs_bot, cs_trained):
    from customer_service import VERTICAL

    metrics = VERTICAL.evaluate(cs_bot, cs_trained[0])
    assert (
        metrics["n"] >= 300
        and 0.0 <= metrics["accuracy"] <= 1.0
        and 0.0 <= metrics["handoff_rate"] <= 1.0
    )


def test_concurrent_chats_of_one_session_from_threads_are_all_remembered(cs_bot, monkeypatch):
    import time
    from concurrent.futures import ThreadPoolExecutor

    def slow_decide(vector, query, kb, index, k=20):  # time to interleave between read and write
        time.sleep(0.01)
        return Decision("A001", None, 0.9, [], "intent")

    monkeypatch.setattr(cs_bot, "_decide", slow_decide)
    cs_bot.calibration.threshold = 0.5
    messages = [f"how do I freeze card number {i}" for i in range(8)]
    with ThreadPoolExecutor(len(messages)) as pool:
        list(pool.map(lambda m: cs_bot.chat("threads", m), messages))
    turns = cs_bot.sessions.get("threads").turns
    assert sorted(t["text"] for t in turns if t["role"] == "user") == sorted(messages)
    assert [t["role"] for t in turns] == ["user", "bot"] * len(messages)
    assert len(cs_bot.locks) == 0
