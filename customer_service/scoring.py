"""One decision rule, shared by training-time evaluation and the running bot.

With an intent head, the intent comes from the head, optionally combined with the intents of
the retrieved answers (a product of experts, `head^w * retrieval^(1-w)`, with `w` and the
temperature fitted on validation: the nearest paraphrases correct some of the head's mistakes), and
the best retrieved answer of that intent is the answer. Without one, or when the KB gained an
answer after training that retrieval prefers, the top retrieved answer wins and its calibrated
retrieval probability is the confidence. Every decision also carries its in-scope score (see
`ood`), which the handoff threshold applies to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from customer_service.ood import Calibration, in_scope_probability
from customer_service.retrieval import Hit
from shared.calibration import softmax


@dataclass
class Decision:
    """What the bot concluded for one query."""

    answer_id: str | None
    intent: str | None
    confidence: float
    hits: list[Hit] = field(default_factory=list)
    via: str = "retrieval"
    in_scope: float | None = None  # None: judged by its confidence alone

    @property
    def similarity(self) -> float:
        """Cosine similarity of the query to its nearest KB entry (0 without hits)."""
        return max((h.dense for h in self.hits), default=0.0)

    @property
    def handoff_score(self) -> float:
        """What the handoff threshold compares: the in-scope score, else the confidence."""
        return self.confidence if self.in_scope is None else self.in_scope


def retrieval_probs(hits: list[Hit], calibration: Calibration) -> np.ndarray:
    """Calibrated probabilities over the retrieved answers (in hit order)."""
    if not hits:
        return np.zeros(0)
    return softmax(np.array([h.score for h in hits]), calibration.retrieval_temperature)


def decide(
    hits: list[Hit],
    intent_logits: np.ndarray | None,
    intents: list[str],
    answers: dict[str, dict[str, str]],
    calibration: Calibration,
) -> Decision:
    """Chooses the answer, intent and confidence for one query and scores it in scope.

    See the module doc: the intent reading (`_by_intent`) when there is one, else the top
    retrieved answer.
    """
    probs = retrieval_probs(hits, calibration)
    top = hits[0].answer_id if hits else None
    decision = Decision(
        top,
        (answers.get(top, {}).get("intent") or None) if top else None,
        float(probs[0]) if len(probs) else 0.0,
        hits,
        "retrieval",
    )
    if intent_logits is not None and intents:
        decision = _by_intent(decision, probs, intent_logits, intents, answers, calibration)
    decision.in_scope = float(
        in_scope_probability(decision.confidence, decision.similarity, calibration.in_scope_weights)
    )
    return decision


def intent_probs(
    hits: list[Hit],
    intent_logits: np.ndarray,
    intents: list[str],
    answers: dict[str, dict[str, str]],
    calibration: Calibration,
    retrieval: np.ndarray | None = None,
    head_weight: float | None = None,
) -> np.ndarray:
    """Calibrated intent probabilities: the head's, or its product with the retrieval vote.

    The retrieval vote of an intent is the calibrated probability mass of its retrieved answers
    (`retrieval` when already computed); `head_weight` overrides the calibrated one (for fitting).
    """
    w = calibration.head_weight if head_weight is None else head_weight
    head = softmax(intent_logits, calibration.intent_temperature)
    if w >= 1.0 or not hits:
        return head
    retrieval = retrieval_probs(hits, calibration) if retrieval is None else retrieval
    vote = np.zeros(len(intents))
    column = {name: i for i, name in enumerate(intents)}
    for hit, p in zip(hits, retrieval, strict=True):
        i = column.get(answers.get(hit.answer_id, {}).get("intent", ""))
        if i is not None:
            vote[i] += p
    if vote.sum() == 0:  # no retrieved answer of a known intent: nothing to fuse with
        return head
    z = w * np.log(head + 1e-12) + (1.0 - w) * np.log(vote + 1e-9)
    return softmax(z, calibration.fused_temperature)


def _by_intent(
    retrieved: Decision,
    probs: np.ndarray,
    intent_logits: np.ndarray,
    intents: list[str],
    answers: dict[str, dict[str, str]],
    calibration: Calibration,
) -> Decision:
    """The intent reading of a query, or `retrieved` (its top answer) where retrieval must win."""
    hits = retrieved.hits
    if retrieved.answer_id and not retrieved.intent:
        # An answer added after training, which the head cannot know. The vote of the fusion
        # only counts answers of known intents, so the new answer is weighed against the head.
        head = softmax(intent_logits, calibration.intent_temperature)
        if retrieved.confidence > float(head.max()):
            return retrieved
    p = intent_probs(hits, intent_logits, intents, answers, calibration, probs)
    intent = intents[int(p.argmax())]
    conf = float(p.max())
    answer_id = next(
        (h.answer_id for h in hits if answers.get(h.answer_id, {}).get("intent") == intent), None
    )
    if answer_id is None:
        answer_id = next((k for k, v in answers.items() if v.get("intent") == intent), None)
    if answer_id is None:
        return retrieved  # that intent's answers were removed from the KB
    return Decision(answer_id, intent, conf, hits, "intent")
