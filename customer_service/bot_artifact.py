"""The bot's artifact folder, written atomically: what `CustomerServiceBot` loads.

Besides the shared manifest and model card: `encoder/` (a sentence-transformers folder),
`head.safetensors` (intent head), `acts.safetensors` (dialogue-act classifier), `kb/` (the
first KB version) and `bot.json` (intents, calibration, slots, session limits, act labels and
the dialogue replies). A bot trained through an adapter has `adapter/` in place of `encoder/`
(`customer_service.adapter`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from customer_service import adapter
from customer_service.config import CustomerServiceConfig
from customer_service.dialogue_acts import ActClassifier
from customer_service.kb_store import KnowledgeBase, save_version
from customer_service.ood import Calibration
from customer_service.retrieval import BotTask
from customer_service.schemas import Dataset
from shared.artifacts import save_weights, write_artifact
from shared.data import fingerprint
from shared.data_report import MANIFEST_KEY
from shared.recipes import MANIFEST_KEY as RECIPE_KEY
from shared.training import TrainResult


def write_bot_artifact(
    out_dir: Path,
    cfg: CustomerServiceConfig,
    task: BotTask,
    kb: KnowledgeBase,
    calibration: Calibration,
    intents: list[str],
    data: Dataset,
    metrics: dict[str, Any],
    data_path: Path,
    result: TrainResult | None,
    acts: ActClassifier | None = None,
    data_report: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
) -> Path:
    """Writes encoder, head, act classifier, KB version and calibration into `out_dir/"artifact"`
    atomically (the act weights in `acts.safetensors`, their labels and replies in `bot.json`).

    The manifest also records `training`: which metric chose the kept weights and at which
    epoch, `data_report` (`shared.data_report`): rows read, dropped and why, per split, and
    `recipe` (`shared.recipes.RecipeChoice.as_dict()`): which recipe trained it and why.
    """
    bot = {
        "intents": intents,
        "calibration": calibration.as_dict(),
        "slots": data.slots,
        "session_ttl_s": cfg.session_ttl_s,
        "max_sessions": cfg.max_sessions,
        "dialogue": {
            "act_labels": acts.labels if acts else [],
            "act_threshold": cfg.dialogue.act_threshold,
            "replies": cfg.dialogue.replies,
        },
    }
    adapted = adapter.is_adapted_encoder(task.backbone)
    extra: dict[str, Any] = {}
    if adapted:
        extra[adapter.MANIFEST_KEY] = adapter.section(task.backbone, cfg.model)
        extra["formats"] = [adapter.peft_format(cfg.model)]
    with write_artifact(
        Path(out_dir) / "artifact",
        vertical="customer_service",
        model_name=cfg.model,
        config=cfg.model_dump(),
        metrics=metrics,
        label_map=intents or None,
        data_fingerprint=fingerprint(Path(data_path)),
        training=result,
        extra={
            "calibration": bot["calibration"],
            **({MANIFEST_KEY: data_report} if data_report is not None else {}),
            **({RECIPE_KEY: recipe} if recipe is not None else {}),
            **extra,
        },
    ) as tmp:
        if adapted:
            adapter.write_adapter(tmp, task.backbone, cfg.model)
        else:
            task.backbone.save(str(tmp / adapter.ENCODER_DIR))
        if task.head is not None:
            save_weights(tmp / "head.safetensors", task.head.state_dict())
        if acts is not None:
            save_weights(tmp / "acts.safetensors", acts.state_dict())
        save_version(tmp, kb)
        (tmp / "bot.json").write_text(json.dumps(bot, indent=2), encoding="utf-8")
    return Path(out_dir) / "artifact"
