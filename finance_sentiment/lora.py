"""LoRA (or IA3) for finance_sentiment: the adapter artifact, its hash-checked loading, merging.

A model trained with `adapter: {method: lora, ...}` (or `ia3`) is written as an *adapter
artifact*:

- `adapter/adapter_model.safetensors`, `adapter/adapter_config.json`: the adapter weights only, in
  peft's format (`PeftModel.from_pretrained(base, "ARTIFACT/adapter")` opens them);
- `adapter/heads.safetensors`: the sentiment head and, with topics, the topic head;
- `finance.json` as in every artifact, and the manifest's `adapter` section: the method, the
  base model's name (the config's `model`) and the sha256 of its weights
  (`shared.adapters.base_weights_hash`).

No base weight and no tokenizer is stored: both come from the base model, loaded by its name,
and loading refuses a base whose weights hash differs. `merged_task` folds the adapter into the
body (`verticals compress --method lora-merge`), which gives back a plain artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from shared.adapters import HEADS_FILE as ADAPTER_HEADS
from shared.adapters import adapter_section as shared_adapter_section
from shared.adapters import (
    check_adapter_folder,
    head_tensors,
    load_adapter,
    merge_lora,
    save_adapter,
)
from shared.adapters import load_heads as shared_load_heads
from shared.artifacts import save_weights

from .model import SentimentTask, n_topics

ADAPTER_DIR = "adapter"
HEADS_FILE = f"{ADAPTER_DIR}/{ADAPTER_HEADS}"
MANIFEST_KEY = "adapter"
"""The manifest section of an adapter artifact: method, base model, its hash, sizes."""
HEAD_NAMES = ("head", "topic_head")


def adapter_section(task: SentimentTask, base_name: str) -> dict[str, Any]:
    """The manifest's `adapter` section of `task`, whose body carries a LoRA or IA3 adapter."""
    return shared_adapter_section(task.backbone, base_name)


def peft_format(base_name: str) -> dict[str, str]:
    """The model card's snippet (manifest `formats`) for opening the adapter with peft."""
    return {
        "library": "peft",
        "code": "from peft import PeftModel\nfrom transformers import AutoModel\n\n"
        f"# the base is {base_name!r} (`verticals` resolves packaged names such as minilm)\n"
        'body = PeftModel.from_pretrained(AutoModel.from_pretrained("BASE"), "ARTIFACT/adapter")\n'
        "# mean-pool body(**inputs).last_hidden_state; the heads are in adapter/heads.safetensors",
    }


def write_adapter(folder: Path, task: SentimentTask, base_name: str) -> None:
    """Writes `task`'s adapter and heads into the artifact folder `folder` (no base weight)."""
    save_adapter(task.backbone, folder / ADAPTER_DIR, base_name)
    save_weights(folder / HEADS_FILE, head_tensors({n: getattr(task, n) for n in HEAD_NAMES}))


def is_adapter_artifact(manifest: dict[str, Any]) -> bool:
    """Whether the manifest is an adapter artifact's (a merged or compressed one is not)."""
    return bool(manifest.get(MANIFEST_KEY))


def load_heads(task: SentimentTask, artifact: Path) -> SentimentTask:
    """`task` with the heads of the adapter artifact `artifact` (strictly: shapes must match).

    Raises:
        ArtifactError: when the heads file is missing or does not fit `finance.json`.
    """
    heads = {name: getattr(task, name) for name in HEAD_NAMES}
    shared_load_heads(heads, artifact / HEADS_FILE, "finance.json's labels and topics")
    return task


def load_adapter_task(
    artifact: Path, meta: dict[str, Any], section: dict[str, Any]
) -> tuple[Any, SentimentTask]:
    """The tokenizer and task of an adapter artifact: the base model named in `section`,
    checked against its hash, with the artifact's LoRA and heads.

    Raises:
        ArtifactError: a file is missing, or the base's weights are not the ones it was trained on.
    """
    from shared.models import load_model

    tokenizer, base = load_model(section["base_model"], "text-backbone")
    body = load_adapter(base, artifact / ADAPTER_DIR, section["base_sha256"], section["base_model"])
    return tokenizer, load_heads(task_on(body, meta), artifact)


def task_on(body: nn.Module, meta: dict[str, Any]) -> SentimentTask:
    """A task with `body` (not copied: several tasks may share one) and fresh heads."""
    return SentimentTask(body, len(meta["labels"]), n_topics(meta))


def tenant_task(body: nn.Module, artifact: Path, meta: dict[str, Any]) -> SentimentTask:
    """A task on the shared `body` (a `PeftModel` holding the tenant's adapter, loaded by the
    caller) with the heads of the tenant's adapter artifact `artifact`."""
    check_adapter_folder(artifact / ADAPTER_DIR)
    return load_heads(task_on(body, meta), artifact).eval()


def merged_task(task: SentimentTask) -> SentimentTask:
    """`task` with its adapter folded into the body: a plain `SentimentTask` (`task` is reused)."""
    task.backbone = merge_lora(task.backbone)
    return task
