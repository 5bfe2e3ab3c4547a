"""`verticals chat customer_service`: the shell reads piped lines and shows each reply's reading."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from customer_service.shell import describe, run_shell
from shared.cli import app


@pytest.mark.slow
def test_chat_reads_piped_input_until_quit_and_shows_act_intent_confidence_handoff(cs_minilm):
    result = CliRunner().invoke(
        app,
        ["chat", "customer_service", "--artifact", str(cs_minilm[1]), "--device", "cpu"],
        input="hello\nhow do I freeze my debit card\nand for my credit card?\n"
        "agent please\n/quit\nhow do I close my account\n",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "you> hello" in out and "bot> Hello! How can I help you today?" in out
    assert "[act=greet confidence=" in out and "handoff=no]" in out
    assert "intent=freeze_card answer=A001 confidence=" in out
    assert "freeze your credit card" in out and "context=yes" in out
    assert "handoff=yes (the customer asked for a person)" in out
    assert "close my account" not in out.split("/quit")[-1]  # nothing read after /quit
    assert out.count("bot> ") == 4


class EchoBot:
    def __init__(self):
        self.calls = []

    def chat(self, session_id, message):
        self.calls.append((session_id, message))
        return {"answer": message.upper(), "intent": "x", "answer_id": "A1", "confidence": 0.5}


def test_the_shell_stops_at_end_of_input_skips_blank_lines_and_restarts_sessions():
    lines = iter(["hi", "", "/restart", "again"])

    def read(prompt):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    bot, shown = EchoBot(), []
    assert run_shell(bot, read, shown.append) == 2
    assert [m for _, m in bot.calls] == ["hi", "again"]
    assert bot.calls[0][0] != bot.calls[1][0]  # /restart: a new session
    assert "bot> HI" in shown and "(new conversation)" in shown


def test_describe_names_the_act_or_the_answer_and_why_it_handed_off():
    act = {"act": "human", "confidence": 0.97, "handoff": True, "handoff_reason": "asked"}
    assert describe(act) == "  [act=human confidence=0.97 handoff=yes (asked)]"
    asks = {"intent": "freeze_card", "answer_id": "A001", "confidence": 0.9}
    asks["missing_slots"] = ["card_type"]
    assert describe(asks) == (
        "  [intent=freeze_card answer=A001 confidence=0.90 asks=card_type handoff=no]"
    )
