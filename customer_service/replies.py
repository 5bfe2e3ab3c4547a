"""The reply to one message: the answer text (a filled template) or a handoff, with its sources."""

from __future__ import annotations

import re
from typing import Any

from customer_service.kb_store import KnowledgeBase
from customer_service.ood import Calibration
from customer_service.scoring import Decision, retrieval_probs
from customer_service.session import Session, fill_template

HANDOFF_ANSWER = (
    "I'm not sure I can answer that well, so I'm passing you to a colleague who can help."
)
_HUMAN = re.compile(
    r"\b(human|real person|live agent|an agent|a person|representative|speak to someone)\b", re.I
)


def build_reply(
    decision: Decision,
    kb: KnowledgeBase,
    session: Session,
    text: str,
    calibration: Calibration,
    slot_values: dict[str, list[str]],
) -> dict[str, Any]:
    """The `/chat` response body for a decision (without `context_used`).

    Hands off when the customer asks for a person, when the KB has no answer, or when the
    in-scope score is below the threshold; otherwise fills the answer's template from the
    session's slots and asks for any slot still missing.
    """
    probs = retrieval_probs(decision.hits, calibration)
    sources = [
        {
            "answer_id": h.answer_id,
            "title": kb.answers.get(h.answer_id, {}).get("title", ""),
            "score": round(h.score, 4),
            "probability": round(float(p), 4),
        }
        for h, p in zip(decision.hits[:3], probs[:3], strict=False)
    ]
    out = {
        "answer": HANDOFF_ANSWER,
        "answer_id": decision.answer_id,
        "intent": decision.intent,
        "confidence": round(decision.confidence, 4),
        "in_scope": round(decision.handoff_score, 4),
        "handoff": False,
        "handoff_reason": None,
        "sources": sources,
        "slots": dict(session.slots),
        "missing_slots": [],
    }
    if _HUMAN.search(text):
        return {**out, "handoff": True, "handoff_reason": "the customer asked for a human"}
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
        options = "; ".join(
            f"{s.replace('_', ' ')}: {', '.join(slot_values.get(s, []))}" for s in missing
        )
        answer = f"{answer} (Tell me which one you mean, {options}.)"
    return {**out, "answer": answer, "missing_slots": missing}
