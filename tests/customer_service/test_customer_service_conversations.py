"""Scripted conversation tests: the shipped demo-bank set passes on MiniLM, failures are listed,
and a broken YAML file gets one clear line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from customer_service.conversations import Turn, check_turn, load_conversations, run_conversations
from customer_service.demo_conversations import DEMO_CONVERSATIONS, write_demo_conversations
from shared.cli import app
from shared.errors import DataError


@pytest.mark.slow
def test_the_shipped_demo_bank_conversations_all_pass_through_the_cli(cs_minilm, tmp_path):
    """`make test` runs the demo bank's conversation tests on a MiniLM bot."""
    path = write_demo_conversations(tmp_path / "conversations.yaml")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "customer_service",
            "--artifact",
            str(cs_minilm[1]),
            "--conversations",
            str(path),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
    )
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    failed = (out / "errors.csv").read_text()
    assert result.exit_code == 0, result.output + failed
    assert metrics["n_failed"] == 0 and metrics["conversation_accuracy"] == 1.0, failed
    assert metrics["n_conversations"] >= 10 and metrics["n_turns"] >= 20
    assert "conversation_accuracy" in result.output


def test_the_shipped_set_covers_every_case_of_the_issue(tmp_path):
    conversations = load_conversations(write_demo_conversations(tmp_path / "c.yaml"))
    assert len(conversations) >= 10 and DEMO_CONVERSATIONS.startswith("#")
    turns = [t for c in conversations for t in c.turns]
    acts = {t.act for t in turns}
    assert {"greet", "thank", "goodbye", "human", "affirm", "deny", "none"} <= acts
    assert any(t.context_used for t in turns)  # a slot follow-up
    assert any(t.answer_contains and "which card" in t.answer_contains for t in turns)
    assert any(t.handoff and t.act == "none" for t in turns)  # out of scope
    users = [t.user for t in turns]
    sequence = ["how do I activate my card", "hello", "ok thanks", "what about savings?"]
    assert any(users[i : i + 4] == sequence for i in range(len(users)))


class ScriptedBot:
    """Replies from a table by message; remembers which sessions it saw."""

    def __init__(self, replies):
        self.replies, self.sessions = replies, []

    def chat(self, session_id, message):
        self.sessions.append(session_id)
        return self.replies[message]


QUESTION = {"act": None, "intent": "freeze_card", "answer_id": "A001", "handoff": False}


def test_failed_turns_are_listed_with_conversation_turn_input_and_what_differed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "conversations:\n"
        "  - name: first\n    turns:\n"
        "      - user: freeze\n        intent: freeze_card\n"
        "      - user: hello\n        act: greet\n"
        "  - name: second\n    turns:\n"
        "      - user: freeze\n        answer_id: A002\n        handoff: false\n"
    )
    bot = ScriptedBot(
        {
            "freeze": {**QUESTION, "confidence": 0.9, "answer": "You can freeze it."},
            "hello": {
                **QUESTION,
                "act": "greet",
                "intent": None,
                "confidence": 0.8,
                "answer": "Hi",
            },
        }
    )
    report = run_conversations(bot, path)
    assert report.metrics == {
        "conversation_accuracy": 0.5,
        "turn_accuracy": 2 / 3,
        "n_conversations": 2,
        "n_turns": 3,
        "n_failed": 1,
        "n_failed_conversations": 1,
    }
    (row,) = report.errors
    assert (row["conversation"], row["turn"], row["input"]) == ("second", 1, "freeze")
    assert row["expected"] == "answer_id='A002'" and row["predicted"] == "answer_id='A001'"
    assert row["confidence"] == 0.9
    assert len(set(bot.sessions)) == 2  # a fresh session per conversation


def test_the_cli_exits_1_when_a_turn_fails(cs_artifact, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- name: impossible\n  turns:\n    - user: hello\n      answer_id: NOPE\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        ["evaluate", "customer_service", "--artifact", str(cs_artifact)]
        + ["--conversations", str(path), "--out", str(out), "--device", "cpu"],
    )
    assert result.exit_code == 1, result.output
    assert "impossible" in (out / "errors.csv").read_text()


def test_check_turn_reads_none_as_a_question_and_matches_text_case_insensitively():
    reply = {**QUESTION, "answer": "You can FREEZE your credit card.", "context_used": True}
    assert check_turn(Turn(user="x", act="none", answer_contains="freeze your"), reply) == {}
    missed = check_turn(Turn(user="x", act="greet", context_used=False), reply)
    assert missed == {"act": ("greet", "none"), "context_used": (False, True)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("conversations: [\n  - name: a\n", "not valid YAML at line"),
        (
            "conversations:\n  - name: greet\n    turns:\n      - user: hi\n        intnet: x\n",
            "conversation 1 ('greet'), turn 1, field 'intnet': unknown key (known: user, intent",
        ),
        (
            "conversations:\n  - name: a\n    turns: [{user: hi}]\n  - name: b\n    turns:\n"
            "      - intent: x\n",
            "conversation 2 ('b'), turn 1, field 'user': Field required",
        ),
        (
            "conversations:\n  - name: a\n    turns:\n      - user: '  '\n",
            "turn 1, field 'user': Value error, the message is empty",
        ),
        (
            "conversations:\n  - name: a\n    turns:\n      - user: yes\n",
            "YAML read this message as true; quote it",
        ),
        ("conversations:\n  - name: a\n    turns: []\n", "conversation 1 ('a'), field 'turns'"),
        ("just a sentence\n", "expected a mapping with a 'conversations' list"),
        ("conversations: []\n", "field 'conversations'"),
    ],
)
def test_a_broken_file_gets_one_line_naming_file_conversation_and_field(tmp_path, text, expected):
    path = tmp_path / "tests.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_conversations(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="conversation-test file not found"):
        load_conversations(tmp_path / "nope.yaml")
