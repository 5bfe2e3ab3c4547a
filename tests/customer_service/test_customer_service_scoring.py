"""Intent fusion: the head's probabilities times the retrieved neighbours' intent vote."""

from __future__ import annotations

import numpy as np

from customer_service.evaluation import fit_intent_fusion
from customer_service.ood import Calibration
from customer_service.retrieval import Hit
from customer_service.scoring import decide, intent_probs

INTENTS = ["balance", "card", "pin"]
ANSWERS = {f"a_{i}": {"intent": i, "answer": i} for i in INTENTS}


def hits_for(scores: dict[str, float]) -> list[Hit]:
    return [Hit(f"a_{i}", s, s) for i, s in sorted(scores.items(), key=lambda kv: -kv[1])]


def test_intent_probs_is_the_head_alone_at_weight_one_and_the_product_below():
    cal = Calibration(retrieval_temperature=0.05)
    logits = np.array([2.0, 1.8, -1.0])  # head: a little more "balance"
    hits = hits_for({"balance": 0.60, "card": 0.80, "pin": 0.30})  # neighbours: clearly "card"
    head = intent_probs(hits, logits, INTENTS, ANSWERS, cal)
    assert np.allclose(head.sum(), 1) and head.argmax() == 0
    fused = intent_probs(hits, logits, INTENTS, ANSWERS, cal, head_weight=0.5)
    assert np.allclose(fused.sum(), 1) and fused.argmax() == 1
    cal.head_weight = 0.5
    decision = decide(hits, logits, INTENTS, ANSWERS, cal)
    assert decision.intent == "card" and decision.answer_id == "a_card"
    assert decision.confidence == float(fused.max())


def test_fit_intent_fusion_uses_neighbours_only_when_they_help_on_validation():
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 3, size=n)
    # A noisy head (right about 70% of the time) and neighbours that are right 90% of the time.
    logits = rng.normal(0, 1, size=(n, 3))
    logits[np.arange(n), y] += 1.0
    near = np.where(rng.random(n) < 0.9, y, (y + 1) % 3)
    sims = [
        {name: (0.9 if j == near[i] else 0.5) for j, name in enumerate(INTENTS)} for i in range(n)
    ]
    hits = [hits_for(s) for s in sims]
    cal = Calibration(retrieval_temperature=0.05)
    scores = fit_intent_fusion(hits, logits, list(y), INTENTS, ANSWERS, cal)
    assert cal.head_weight < 1.0 and cal.fused_temperature > 0
    best = scores[f"val_intent_accuracy_head_weight_{cal.head_weight}"]
    assert best > scores["val_intent_accuracy_head_weight_1.0"] + 0.05

    # Neighbours that point anywhere: the head alone is kept.
    noise = [hits_for({name: float(rng.random()) for name in INTENTS}) for _ in range(n)]
    strong = logits.copy()
    strong[np.arange(n), y] += 3.0
    cal = Calibration(retrieval_temperature=0.05)
    fit_intent_fusion(noise, strong, list(y), INTENTS, ANSWERS, cal)
    assert cal.head_weight == 1.0 and cal.fused_temperature == 1.0


def test_an_answer_added_after_training_still_wins_when_fused():
    """The vote counts only answers of known intents, so a new answer is weighed against the head."""
    answers = {**ANSWERS, "new": {"intent": "", "answer": "crypto"}}
    hits = [Hit("new", 0.75, 0.75), *hits_for({"balance": 0.70, "card": 0.55, "pin": 0.50})]
    logits = np.array([1.0, 0.3, 0.0])
    cal = Calibration(retrieval_temperature=0.05, head_weight=0.5)
    decision = decide(hits, logits, INTENTS, answers, cal)
    assert decision.answer_id == "new" and decision.via == "retrieval"
    # With no retrieved answer of a known intent, the fusion is the head alone.
    only_new = [Hit("new", 0.3, 0.3)]
    head = intent_probs(only_new, logits, INTENTS, answers, Calibration())
    fused = intent_probs(only_new, logits, INTENTS, answers, cal)
    assert np.allclose(head, fused)
