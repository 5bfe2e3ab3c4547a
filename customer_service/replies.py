"""The reply to one message: an answer (a filled template), a slot question, a dialogue act's
reply or a handoff, with its sources.

Every reply has the same fields (the `/chat` response body without `context_used`); `act` and
`act_confidence` say which dialogue act the message was read as (None for a question).
"""

from __future__ import annotations

from typing import Any

from customer_service.dialogue_acts import DEFAULT_REPLIES, HUMAN
from customer_service.kb_store import KnowledgeBase
from customer_service.ood import Calibration
from customer_service.scoring import Decision, retrieval_probs
from customer_service.session import Session, fill_template

HANDOFF_ANSWER = (
    "I'm not sure I can answer that well, so I'm passing you to a colleague who can help."
)
HUMAN_REASON = "the customer asked for a person"


def _base(decision: Decision | None, session: Session) -> dict[str, Any]:
    """The fields every reply carries, from a retrieval decision (or none, for an act)."""
    decision = decision or Decision(None, None, 0.0, [])
    return {
        "answer": HANDOFF_ANSWER,
        "answer_id": decision.answer_id,
        "intent": decision.intent,
        "confidence": round(decision.confidence, 4),
        "in_scope": round(decision.handoff_score, 4),
        "handoff": False,
        "handoff_reason": None,
        "sources": [],
        "slots": dict(session.slots),
        "missing_slots": [],
        "act": None,
        "act_confidence": None,
    }


def _sources(decision: Decision, kb: KnowledgeBase, calibration: Calibration) -> list[dict]:
    """The top three retrieved answers with their scores and calibrated probabilities."""
    probs = retrieval_probs(decision.hits, calibration)
    return [
        {
            "answer_id": h.answer_id,
            "title": kb.answers.get(h.answer_id, {}).get("title", ""),
            "score": round(h.score, 4),
            "probability": round(float(p), 4),
        }
        for h, p in zip(decision.hits[:3], probs[:3], strict=False)
    ]


def slot_question(
    missing: list[str], slot_values: dict[str, list[str]], replies: dict[str, str]
) -> str:
    """The question for the first missing slot ("Which card type do you mean: debit or credit?")."""
    slot = missing[0]
    values = slot_values.get(slot, [])
    options = ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else "".join(values)
    template = replies.get("ask_slot", DEFAULT_REPLIES["ask_slot"])
    text = template.replace("{slot}", slot.replace("_", " ")).replace("{options}", options)
    return text if options else text.split(":")[0].rstrip() + "?"


def build_reply(
    decision: Decision,
    kb: KnowledgeBase,
    session: Session,
    calibration: Calibration,
    slot_values: dict[str, list[str]],
    replies: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The reply to a question, from its decision.

    Hands off when the KB has no answer or when the in-scope score is below the threshold.
    Otherwise fills the answer's template from the session's slots; when a slot is still
    missing, the reply asks for it instead (`missing_slots` lists them) and the answer comes
    once the customer names it, so no answer is ever given with a blank.
    """
    out = {**_base(decision, session), "sources": _sources(decision, kb, calibration)}
    if decision.answer_id is None or decision.answer_id not in kb.answers:
        return {**out, "handoff": True, "handoff_reason": "the knowledge base has no answers"}
    if decision.handoff_score < calibration.threshold:
        reason = (
            f"in-scope score {decision.handoff_score:.2f} is below the threshold "
            f"{calibration.threshold:.2f}: the question looks out of scope for the knowledge base"
        )
        return {**out, "handoff": True, "handoff_reason": reason}
    answer, missing = fill_template(kb.answers[decision.answer_id]["answer"], session.slots)
    if missing:
        question = slot_question(missing, slot_values, replies or DEFAULT_REPLIES)
        return {**out, "answer": question, "missing_slots": missing}
    return {**out, "answer": answer}


def act_reply(
    act: str,
    confidence: float,
    session: Session,
    replies: dict[str, str],
) -> dict[str, Any]:
    """The reply to a dialogue act; `human` (a request for a person) always hands off."""
    out = _base(None, session)
    out.update(
        answer=replies.get(act) or DEFAULT_REPLIES.get(act, ""),
        confidence=round(confidence, 4),
        in_scope=None,
        act=act,
        act_confidence=round(confidence, 4),
    )
    if act == HUMAN:
        out.update(handoff=True, handoff_reason=HUMAN_REASON)
    return out
