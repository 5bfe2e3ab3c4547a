"""`verticals demo customer_service`: train on the fictional bank's KB and play a conversation."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from customer_service.config import CustomerServiceConfig, CustomerServiceTrainerConfig
from customer_service.kb_data import write_demo_data

log = logging.getLogger(__name__)

CONVERSATION = [
    "Hi! How do I freeze my debit card?",
    "and for my credit card?",
    "my card was stolen this morning",
    "what's the weather like in Paris tomorrow?",
    "can I buy bitcoin with you?",
]
NEW_ANSWER = {
    "answer_id": "A900",
    "title": "Crypto assets",
    "intent": "",
    "answer": "Larkspur Bank does not offer crypto assets such as bitcoin; you can send money to a regulated exchange.",
    "questions": ["can I buy cryptocurrency", "do you support bitcoin"],
}


def run_demo(workdir: Path, epochs: int = 2) -> dict[str, Any]:
    """Trains on generated bank data in `workdir`, then chats; returns held-out metrics and the transcript."""
    from customer_service import VERTICAL
    from customer_service.training import train
    from shared.registry import build_settings, load_runtime

    started = time.perf_counter()
    data = write_demo_data(workdir / "data")
    cfg = CustomerServiceConfig(
        max_seq_length=32, trainer=CustomerServiceTrainerConfig(epochs=epochs)
    )
    artifact = train(cfg, data, workdir / "run")
    bot = load_runtime(VERTICAL, artifact, build_settings(VERTICAL))
    transcript = []
    for i, message in enumerate(CONVERSATION):
        if i == len(CONVERSATION) - 1:
            version = bot.add_answers([NEW_ANSWER])["version"]
            transcript.append(
                {"kb_update": f"added answer A900 (crypto) -> KB {version}, no retraining"}
            )
        reply = bot.chat("demo-session", message)
        transcript.append(
            {
                "user": message,
                "bot": reply["answer"],
                "answer_id": reply["answer_id"],
                "intent": reply["intent"],
                "confidence": reply["confidence"],
                "in_scope": reply["in_scope"],
                "handoff": reply["handoff"],
                "handoff_reason": reply["handoff_reason"],
                "context_used": reply["context_used"],
            }
        )
    metrics = bot.manifest["metrics"]
    keys = (
        "test_accuracy",
        "test_in_scope_accuracy",
        "test_oos_recall",
        "test_oos_precision",
        "test_oos_auroc",
        "test_in_scope_handoff_rate",
        "test_retrieval_recall_at_1",
        "test_retrieval_mrr",
        "test_intent_accuracy",
        "n_train",
        "n_test",
        "test_n_test_oos",
        "val_threshold",
    )
    return {
        "artifact": str(artifact),
        "held_out_metrics": {k: round(metrics[k], 4) for k in keys if k in metrics},
        "calibration": bot.calibration.as_dict(),
        "conversation": transcript,
        "seconds": round(time.perf_counter() - started, 1),
    }
