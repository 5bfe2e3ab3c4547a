"""customer_service: a dialogue retrieval bot that learns from past dialogues and knows when to hand off.

Importing this package is light: models, indexes and FastAPI routes load inside the wrappers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from customer_service.config import CustomerServiceConfig, CustomerServiceSettings
from shared.registry import Compressor, Vertical

SMOKE_OVERRIDES = {
    "model": "random:bert-tiny",
    "recipe": "finetune",  # one fit: `auto` would also score `frozen`
    "trainer": {"max_steps": 2, "batch_size": 8, "progress": False},
}


def _train(cfg: CustomerServiceConfig, data_path: Path, out_dir: Path) -> Path:
    from customer_service.training import train

    return train(cfg, Path(data_path), Path(out_dir))


def _load(artifact_dir: Path, settings: CustomerServiceSettings) -> Any:
    from customer_service.bot import CustomerServiceBot

    return CustomerServiceBot(Path(artifact_dir), settings)


def _build_router() -> Any:
    from customer_service.service import build_router

    return build_router()


def _demo(workdir: Path) -> dict[str, Any]:
    from customer_service.demo import run_demo

    return run_demo(Path(workdir))


def _example_data(folder: Path) -> Path:
    from customer_service.kb_data import write_demo_data

    return write_demo_data(Path(folder))


def _example_inputs(data_path: Path) -> list[dict[str, Any]]:
    return [
        {"session_id": "example", "message": "how do I freeze my credit card"},
        {"session_id": "example", "message": "and for my debit card?"},
        {"session_id": "other", "message": "what's the weather like in Paris tomorrow"},
    ]


def _smoke_request(client: Any, data_path: Path) -> Any:
    return client.post(
        "/v1/customer_service/chat", json={"session_id": "smoke", "message": "I lost my card"}
    )


def _evaluate(runtime: Any, data_path: Path) -> Any:
    from customer_service.faq_eval import evaluate_runtime

    return evaluate_runtime(runtime, Path(data_path))


def _evaluate_conversations(runtime: Any, yaml_path: Path) -> Any:
    from customer_service.conversations import run_conversations

    return run_conversations(runtime, Path(yaml_path))


def _chat(runtime: Any) -> None:
    from customer_service.shell import run_shell

    run_shell(runtime)


def _compress_apply(job: Any) -> dict[str, Any]:
    from customer_service.compress import apply

    return apply(job)


def _compress_validation(artifact_dir: Path, data_path: Path) -> Any:
    from customer_service.compress import validation

    return validation(Path(artifact_dir), Path(data_path))


def _schemas() -> dict[str, Any]:
    from customer_service.schemas import (
        ACTS_SCHEMA,
        DIALOGUE_SCHEMA,
        KB_SCHEMA,
        OOS_SCHEMA,
        PAIRS_SCHEMA,
    )

    return {
        "kb": KB_SCHEMA,
        "pairs": PAIRS_SCHEMA,
        "dialogues": DIALOGUE_SCHEMA,
        "out_of_scope": OOS_SCHEMA,
        "dialogue_acts": ACTS_SCHEMA,
    }


VERTICAL = Vertical(
    name="customer_service",
    summary="Dialogue retrieval bot: answers from a KB, fills templates from context, hands off when unsure.",
    config_cls=CustomerServiceConfig,
    train=_train,
    load=_load,
    build_router=_build_router,
    demo=_demo,
    example_data=_example_data,
    example_inputs=_example_inputs,
    smoke_overrides=SMOKE_OVERRIDES,
    smoke_request=_smoke_request,
    evaluate=_evaluate,
    evaluate_conversations=_evaluate_conversations,
    chat=_chat,
    schemas=_schemas(),
    settings_cls=CustomerServiceSettings,
    compress=Compressor(("int8", "lora-merge"), _compress_apply, _compress_validation),
)
