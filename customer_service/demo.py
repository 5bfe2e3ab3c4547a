"""`verticals demo customer_service`: train on the fictional bank's KB, play a conversation, and
run the demo bank's conversation tests (`demo_conversations`), as `make test` does."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from customer_service.config import CustomerServiceConfig, CustomerServiceTrainerConfig
from customer_service.demo_conversations import write_demo_conversations
from customer_service.kb_data import write_demo_data

log = logging.getLogger(__name__)

CONVERSATION = [
    "Hi! How do I freeze my debit card?",
    "and for my credit card?",
    "ok thanks",
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


def demo_config(epochs: int = 2) -> CustomerServiceConfig:
    """The demo's training config: MiniLM, short texts, `epochs` epochs."""
    return CustomerServiceConfig(
        max_seq_length=32, trainer=CustomerServiceTrainerConfig(epochs=epochs)
    )


def run_conversation_tests(bot: Any, workdir: Path) -> dict[str, Any]:
    """Runs the demo bank's conversation tests on `bot`; writes their report under `workdir`."""
    from customer_service.conversations import run_conversations
    from shared.reports import write_report

    path = write_demo_conversations(workdir / "conversations.yaml")
    report = run_conversations(bot, path)
    folder = write_report(report, workdir / "conversation_report")
    log.info(
        "conversation tests: %d of %d turns failed",
        report.metrics["n_failed"],
        report.metrics["n_turns"],
    )
    return {
        "file": str(path),
        "report": str(folder),
        "metrics": report.metrics,
        "failed_turns": [
            {k: e[k] for k in ("conversation", "turn", "input", "expected", "predicted")}
            for e in report.errors
        ],
    }


def run_demo(workdir: Path, epochs: int = 2) -> dict[str, Any]:
    """Trains on generated bank data in `workdir`, chats and runs the conversation tests;
    returns held-out metrics, the transcript and the tests' result."""
    from customer_service import VERTICAL
    from customer_service.training import train
    from shared.registry import build_settings, load_runtime

    started = time.perf_counter()
    data = write_demo_data(workdir / "data")
    artifact = train(demo_config(epochs), data, workdir / "run")
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
                "act": reply["act"],
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
        "conversation_tests": run_conversation_tests(bot, workdir),
        "seconds": round(time.perf_counter() - started, 1),
    }
