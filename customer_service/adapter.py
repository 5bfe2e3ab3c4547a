"""LoRA (or IA3) on the bot's sentence encoder: the adapter artifact, its checked loading, merging.

With `adapter: {method: lora, ...}` in the config, the transformer inside the sentence encoder
(`encoder[0].model`, a transformers model) is wrapped by peft (`shared.adapters.apply_lora`):
the base stays frozen, and the low-rank adapter and the intent head train through the same
loss as a full fine-tune (in-batch negatives plus the intent cross-entropy).

The artifact then holds `adapter/adapter_model.safetensors` and `adapter/adapter_config.json`
(peft's format) in place of `encoder/`, and the manifest's `adapter` section: the method, the
base model's name (the config's `model`) and the sha256 of its weights. Everything else is
as in every bot artifact: `head.safetensors`, `acts.safetensors`, `kb/` (embedded by the
adapted encoder) and `bot.json`. Loading rebuilds the base by name, refuses one whose hash
differs, and folds the adapter in (:func:`load_encoder`): the bot runs a plain encoder, as
fast as a fully fine-tuned one. `verticals compress --method lora-merge` writes that encoder as
an ordinary artifact's `encoder/` (:func:`merge_into_folder`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from shared.adapters import (
    AdapterConfig,
    adapter_section,
    apply_lora,
    is_adapted,
    load_adapter,
    merge_lora,
    save_adapter,
)
from shared.errors import ArtifactError

ADAPTER_DIR = "adapter"
ENCODER_DIR = "encoder"
MANIFEST_KEY = "adapter"
"""The manifest section of an adapter artifact: method, base model, its hash, sizes."""


def transformer_of(encoder: Any) -> Any:
    """The sentence encoder's first module, which holds the transformers model as `.model`.

    Raises:
        ArtifactError: for an encoder without one (a static-embedding model, say).
    """
    first = encoder[0] if len(encoder) else None
    if first is None or not hasattr(first, "model"):
        raise ArtifactError(
            f"the sentence encoder's first module is {type(first).__name__}, not a transformer: "
            "an adapter needs a transformers-based encoder (drop `adapter` for this model)"
        )
    return first


def adapt(encoder: Any, cfg: AdapterConfig) -> Any:
    """`encoder` with a fresh adapter on its transformer (in place); only the adapter trains."""
    module = transformer_of(encoder)
    module.model = apply_lora(module.model, cfg)
    return encoder


def is_adapted_encoder(encoder: Any) -> bool:
    """Whether the encoder's transformer carries a peft adapter."""
    try:
        return is_adapted(transformer_of(encoder).model)
    except ArtifactError:
        return False


def is_adapter_artifact(manifest: dict[str, Any]) -> bool:
    """Whether the manifest is an adapter artifact's (a merged or compressed one is not)."""
    return bool(manifest.get(MANIFEST_KEY))


def section(encoder: Any, base_name: str) -> dict[str, Any]:
    """The manifest's `adapter` section of an adapted encoder (base name and hash, sizes)."""
    return adapter_section(transformer_of(encoder).model, base_name)


def write_adapter(folder: Path, encoder: Any, base_name: str) -> None:
    """Writes the encoder's adapter (only) into `folder/adapter`."""
    save_adapter(transformer_of(encoder).model, Path(folder) / ADAPTER_DIR, base_name)


def peft_format(base_name: str) -> dict[str, str]:
    """The model card's snippet (manifest `formats`) for opening the adapter without us."""
    return {
        "library": "peft",
        "code": "from peft import PeftModel\nfrom sentence_transformers import SentenceTransformer\n\n"
        f"# the base is {base_name!r} (`verticals` resolves packaged names such as minilm)\n"
        'encoder = SentenceTransformer("BASE")\n'
        'encoder[0].model = PeftModel.from_pretrained(encoder[0].model, "ARTIFACT/adapter")\n'
        "# the intent head is head.safetensors: logits = 10 * embedding @ weight.T + bias",
    }


def load_encoder(
    artifact: Path, manifest: dict[str, Any], device: str = "cpu", merge: bool = True
) -> Any:
    """The sentence encoder of the adapter artifact `artifact`: its base model by name, checked
    against the recorded hash, with the adapter loaded and, with `merge`, folded in.

    Raises:
        ArtifactError: a file is missing, or the base's weights are not the ones it was trained on.
    """
    from shared.models import load_model

    record = manifest[MANIFEST_KEY]
    encoder = load_model(record["base_model"], "sentence-encoder")
    encoder.max_seq_length = manifest.get("config", {}).get(
        "max_seq_length", encoder.max_seq_length
    )
    module = transformer_of(encoder)
    module.model = load_adapter(
        module.model, Path(artifact) / ADAPTER_DIR, record["base_sha256"], record["base_model"]
    )
    if merge:
        module.model = merge_lora(module.model)
    return encoder.to(device).eval()


def merge_into_folder(folder: Path, manifest: dict[str, Any]) -> Any:
    """Rewrites the adapter artifact copy `folder` as a plain one: the merged encoder saved in
    `encoder/`, `adapter/` removed; returns the merged encoder (the caller drops the manifest's
    `adapter` section)."""
    encoder = load_encoder(folder, manifest)
    encoder.save(str(Path(folder) / ENCODER_DIR))
    shutil.rmtree(Path(folder) / ADAPTER_DIR)
    return encoder
