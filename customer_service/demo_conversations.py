"""Conversation tests for the demo bank (Larkspur Bank, `kb_data`), in the format of `conversations`.

They cover what a customer does besides asking questions: greetings, thanks and goodbyes in a
fresh session and mid-conversation, a follow-up naming a slot, a short new question after an
answer, an answer that needs a slot first, requests for a person and an out-of-scope question.
`verticals demo customer_service` writes them to `conversations.yaml` and runs them; run them on
any artifact trained on the demo data with::

    verticals evaluate customer_service --artifact DIR --conversations conversations.yaml
"""

from __future__ import annotations

from pathlib import Path

DEMO_CONVERSATIONS = """\
# Conversation tests of the demo bank: each conversation runs in a fresh session.
# A turn states what the reply must show: intent, answer_id, act (none for a question),
# handoff, context_used, answer_contains.
conversations:
  - name: greeting in a fresh session
    turns:
      - user: hello
        act: greet
        handoff: false
      - user: hi there
        act: greet
        handoff: false

  - name: thanks and goodbye in a fresh session
    turns:
      - user: thanks, bye
        act: goodbye
        handoff: false

  - name: activate card, then small talk and a new question (issue 14)
    turns:
      - user: how do I activate my card
        intent: activate_card
        answer_id: A006
        act: none
      - user: hello
        act: greet
        handoff: false
      - user: ok thanks
        act: thank
        handoff: false
        context_used: false
      - user: what about savings?
        act: none
        context_used: false
      - user: agent please
        act: human
        handoff: true
        answer_contains: colleague

  - name: a follow-up naming a slot
    turns:
      - user: how do I freeze my debit card
        intent: freeze_card
        answer_contains: freeze your debit card
      - user: and for my credit card?
        answer_id: A001
        context_used: true
        answer_contains: freeze your credit card
      - user: thank you, goodbye
        act: goodbye
        handoff: false

  - name: an answer that needs a slot asks for it first
    turns:
      - user: how do I freeze my card
        intent: freeze_card
        answer_contains: which card type do you mean
        handoff: false
      - user: credit
        answer_id: A001
        context_used: true
        answer_contains: freeze your credit card

  - name: a greeting in front of a question is the question
    turns:
      - user: Hi! How do I freeze my debit card?
        intent: freeze_card
        act: none
      - user: ok thanks
        act: thank

  - name: an explicit request for a person in a fresh session
    turns:
      - user: can I talk to a human
        act: human
        handoff: true
        answer_contains: colleague

  - name: a request for a person mid-conversation
    turns:
      - user: my card was stolen
        intent: report_stolen_card
      - user: I want to speak to a person
        act: human
        handoff: true

  - name: an out-of-scope question is handed off
    turns:
      - user: what's the weather like in Paris tomorrow?
        act: none
        handoff: true

  - name: yes and no
    turns:
      - user: "yes"  # quoted: YAML reads a bare yes as true
        act: affirm
        handoff: false
      - user: "no"
        act: deny
        handoff: false
"""


def write_demo_conversations(path: Path) -> Path:
    """Writes the demo bank's conversation tests to `path` (a `.yaml` file); returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEMO_CONVERSATIONS, encoding="utf-8")
    return path
