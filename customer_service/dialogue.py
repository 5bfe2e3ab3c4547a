"""What a conversation remembers between questions: the topic a follow-up refers to, and the
slots the bot asked for (an answer waiting for them, as a Rasa form waits)."""

from __future__ import annotations

from typing import Any

from customer_service.dialogue_acts import HUMAN
from customer_service.kb_store import KnowledgeBase
from customer_service.scoring import Decision
from customer_service.session import Session, template_slots

MAX_SLOT_ANSWER_WORDS = 3  # "credit", "my debit card": a value, whatever else it retrieves
MAX_FREE_SLOT_WORDS = 4  # a slot without known values takes a short message as its value


def previous_decision(session: Session) -> Decision:
    """The last answer given, as a decision (for a slot value that completes it)."""
    return Decision(
        session.last_answer_id,
        session.last_intent,
        session.last_confidence,
        [],
        "context",
        in_scope=session.last_in_scope,
    )


def completes_pending(
    session: Session,
    text: str,
    mentioned: dict[str, str],
    slot_values: dict[str, list[str]],
    alone: Decision,
    threshold: float,
) -> bool:
    """Whether a message gives a slot the bot has just asked for ("credit", "the debit one please").

    A message naming a value does when it is short, when read alone it is out of scope, or
    when alone it points to the waiting answer anyway; a question of its own that happens to
    name a value ("my credit card was stolen yesterday") is answered as that question. A slot
    without known values takes a short message as its value, added to `mentioned`.

    Args:
        alone: The decision for the message read on its own.
        threshold: The handoff threshold of the in-scope score.
    """
    if not session.pending_slots or session.last_answer_id is None:
        return False
    words = len(text.split())
    if any(s in mentioned for s in session.pending_slots):
        return (
            words <= MAX_SLOT_ANSWER_WORDS
            or alone.handoff_score < threshold
            or alone.answer_id == session.last_answer_id
        )
    slot = session.pending_slots[0]
    if not slot_values.get(slot) and 0 < words <= MAX_FREE_SLOT_WORDS:
        mentioned[slot] = text.strip(" .!?")
        return True
    return False


def after_act(session: Session, act: str) -> None:
    """What a dialogue act does to the conversation: "no", a goodbye or a request for a person
    drops the slot question; a goodbye also ends the topic. Other acts leave both, so a
    follow-up after "ok thanks" still refers to the last answer."""
    if act in ("deny", "goodbye", HUMAN):
        session.pending_slots = []
    if act == "goodbye":
        session.forget_topic()


def remember(
    session: Session, response: dict[str, Any], decision: Decision, kb: KnowledgeBase, query: str
) -> None:
    """Keeps an answered question as the topic (and any slot it asked for) for the next message.

    Args:
        session: Updated in place.
        response: The reply just built (`missing_slots`, `handoff`).
        decision: The decision the reply came from.
        kb: The knowledge base it was answered from (for the answer's template slots).
        query: The text a follow-up will be read in context of (the message, or the message in
            its own context when that reading won).
    """
    session.pending_slots = list(response["missing_slots"])
    if response["handoff"]:
        return
    session.last_query = query
    session.last_answer_id, session.last_intent = decision.answer_id, decision.intent
    session.last_confidence = decision.confidence
    session.last_in_scope = decision.handoff_score
    session.last_slots = template_slots(kb.answers[decision.answer_id]["answer"])
