"""LoRA adapters (peft) on a transformers body, and many adapters served on one base in memory.

- :func:`apply_lora` wraps a body with `peft.get_peft_model`: only the low-rank matrices train,
  the base weights stay frozen and bit for bit as loaded. :func:`training_view` is the view of
  a task with such a body that the shared loop trains (see there why).
- :func:`save_adapter` writes only the adapter (peft's `adapter_model.safetensors` and
  `adapter_config.json`, which `PeftModel.from_pretrained` opens); :func:`base_weights_hash`
  fingerprints the base it belongs to, and :func:`load_adapter` refuses a base whose hash
  differs, since LoRA weights are deltas that mean nothing on other weights.
- :func:`merge_lora` folds an adapter into its base (`merge_and_unload`): a plain model again.
- :class:`AdapterCache` keeps named adapters of many tenants on one `PeftModel`, at most
  `capacity` of them loaded, evicting the least recently used. Rows of different tenants run in
  one forward pass through peft's mixed-batch inference (`adapter_names=`, one per row): the
  base layers run once for the whole batch and each adapter's low-rank product on its own rows.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import Field, field_validator

from shared.config import StrictModel
from shared.errors import ArtifactError

if TYPE_CHECKING:  # torch and peft load when used, not with the configs that name an adapter
    import torch
    from torch import nn

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
BASE_ADAPTER = "__base__"
"""peft's name, in `adapter_names`, of a row that runs the base model without any adapter."""
LORA_KEY = re.compile(r"\.(lora_[A-Za-z_]+|ia3_l|modules_to_save)\.")
"""The names of adapter tensors in a peft model: LoRA's A, B...; IA3's scaling vectors; the
adapter's own copies of layers it trains whole (`modules_to_save`, e.g. a CNN's norm layers)."""
HEADS_FILE = "heads.safetensors"
"""Inside an artifact's adapter folder: the task's heads, trained beside the adapter."""
MIXED_BATCH_METHODS = ("lora",)
"""Methods whose adapters peft runs several of in one batch (`adapter_names=`, per row)."""
T = TypeVar("T")


LORA_DEFAULT_TARGETS = "all-linear"
"""LoRA's layers when the config names none: every Linear layer of the body. Chosen on
validation (PhraseBank 50Agree, `python -m bench.lora_text --adapters lora,lora_all_linear`, seed
0, one epoch, r=8): validation macro-F1 0.831 against 0.790 for peft's query/value, for an
adapter of 1.4 MB (1.5% of MiniLM) against 0.3 MB."""


class AdapterConfig(StrictModel):
    """A parameter-efficient adapter on a frozen body, through peft.

    `lora` (Hu et al., 2021): W x + (alpha / r) B A x, with A (r, in) and B (out, r) trained and
    W frozen; defaults follow peft's and the LoRA paper's for BERT-sized encoders. `ia3` (Liu et
    al., 2022): learned vectors that rescale the keys, values and feed-forward activations,
    about a tenth of LoRA's parameters (`r`, `alpha` and `dropout` do not apply). Several
    tenants' adapters run in one batch only for LoRA (`MIXED_BATCH_METHODS`).
    """

    method: Literal["lora", "ia3"] = "lora"
    """The adapter kind: lora or ia3."""
    r: int = Field(8, ge=1)
    """Rank of the update: the adapter has r * (in + out) parameters per adapted layer."""
    alpha: float = Field(16.0, gt=0)
    """Scale of the update (alpha / r); peft's `lora_alpha`."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout on the adapter's input during training."""
    target_modules: list[str] | Literal["all-linear"] | None = None
    """Names of the Linear layers to adapt (`[query, value]`), `all-linear` (every Linear layer
    of the body, as QLoRA adapts), or None: the method's default. For LoRA that is `all-linear`
    (`LORA_DEFAULT_TARGETS`); for IA3 peft's default for the architecture (key, value and the
    feed-forward output)."""

    @field_validator("target_modules")
    @classmethod
    def _named_for_ia3(cls, value, info):
        if value == "all-linear" and info.data.get("method") == "ia3":
            raise ValueError("all-linear applies to lora; ia3 needs layer names (or null)")
        return value


def lora_recipe(data: Any) -> Any:
    """A vertical config's raw values with `recipe: lora` read as what it means: `recipe:
    finetune` through the adapter given (`adapter: {...}`), or a default LoRA one. For a
    config's `model_validator(mode="before")`; the artifact records `finetune` and the adapter.

    Raises:
        ValueError: `recipe: lora` beside an adapter of another method.
    """
    if not isinstance(data, dict) or data.get("recipe") != "lora":
        return data
    adapter = data.get("adapter") or {"method": "lora"}
    method = adapter.get("method", "lora") if isinstance(adapter, dict) else adapter.method
    if method != "lora":
        raise ValueError(f"recipe=lora asks for a LoRA adapter, but adapter.method is {method!r}")
    return {**data, "recipe": "finetune", "adapter": adapter}


def lora_config(
    cfg: AdapterConfig,
    default_targets: list[str] | None = None,
    modules_to_save: list[str] | None = None,
) -> Any:
    """The peft config of `cfg`: a `LoraConfig` (no bias trained) or an `IA3Config`.

    Args:
        cfg: The adapter the config asks for.
        default_targets: The layers to adapt when `cfg.target_modules` is None, for a body
            whose architecture peft has no default for (a timm CNN's convolutions); None: the
            method's own default (`LORA_DEFAULT_TARGETS`, or peft's IA3 layers for the
            architecture).
        modules_to_save: Layers trained whole, their copies stored in the adapter (a CNN's
            norm layers, whose statistics the adapter carries; the base's stay as loaded).
    """
    from peft import IA3Config, LoraConfig

    targets = cfg.target_modules or default_targets
    if cfg.method == "ia3":
        if targets is None:
            return IA3Config(modules_to_save=modules_to_save)
        named = [m for m in targets if "output" in m or "intermediate" in m]
        feedforward = named if cfg.target_modules is not None else []
        return IA3Config(
            target_modules=targets,
            feedforward_modules=feedforward,
            modules_to_save=modules_to_save,
        )
    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets or LORA_DEFAULT_TARGETS,
        modules_to_save=modules_to_save,
        bias="none",
    )


def apply_lora(
    body: nn.Module,
    cfg: AdapterConfig,
    *,
    default_targets: list[str] | None = None,
    modules_to_save: list[str] | None = None,
) -> Any:
    """`body` (a transformers model or any torch module, a timm backbone say) wrapped with a
    fresh adapter (LoRA, or IA3 by `cfg.method`) named `default`; see :func:`lora_config` for
    `default_targets` and `modules_to_save`.

    The returned `PeftModel` takes the body's inputs and returns its outputs; only the adapter's
    tensors require gradients. peft injects the adapter into `body`'s layers in place.
    """
    from peft import get_peft_model

    with _quiet_peft():
        return get_peft_model(body, lora_config(cfg, default_targets, modules_to_save))


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """Silences transformers' notice, through peft, that `is_gradient_checkpointing` is renamed."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        yield


def is_adapted(module: nn.Module) -> bool:
    """Whether `module` is a peft model (a body carrying adapters)."""
    from peft import PeftModel

    return isinstance(module, PeftModel)


def training_view(task: nn.Module) -> nn.Module:
    """`task`, whose body carries LoRA, as the shared loop should train it: without `backbone`.

    The loop gives a task's `backbone` its own learning rate (`trainer.backbone_lr`, small for
    full fine-tuning) and sets `requires_grad` on all of it at each epoch (the freeze schedule),
    which would unfreeze the base weights. Behind this view every trainable tensor (the adapter
    and the task's heads) trains at `trainer.lr`, a learning rate of LoRA's usual order (1e-4
    to 1e-3), and the base stays frozen; `trainer.freeze_backbone_epochs` does not apply. The
    view holds `task` as `.task` and forwards to it; `task` itself is trained in place.
    """
    return _training_view_class()(task)


@functools.cache
def _training_view_class() -> type:
    from torch import nn

    class AdapterTraining(nn.Module):
        """See :func:`training_view`."""

        def __init__(self, task: nn.Module) -> None:
            super().__init__()
            self.task = task

        def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
            return self.task(batch)

    return AdapterTraining


def trainable_parameters(module: nn.Module) -> int:
    """How many parameters of `module` require gradients."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def adapter_state_dict(model: Any, adapter: str = "default") -> dict[str, torch.Tensor]:
    """The tensors of one adapter of a peft model: what :func:`save_adapter` writes."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model, adapter_name=adapter)


# --- the base's fingerprint ------------------------------------------------------------------


def base_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's tensors under their own names, for a plain or a peft-wrapped model.

    peft renames an adapted layer's weight `<layer>.weight` to `<layer>.base_layer.weight` (a
    layer trained whole: `<layer>.original_module.weight`) and adds `<layer>.lora_A.<adapter>.weight`
    (`<layer>.modules_to_save.<adapter>.weight`), ...; those are dropped and the names restored,
    so the base hashes the same before and after wrapping.
    """
    if is_adapted(model):
        model = model.get_base_model()
    return {
        k.replace(".base_layer.", ".").replace(".original_module.", "."): v
        for k, v in model.state_dict().items()
        if not LORA_KEY.search(k)
    }


def weights_hash(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor of `state` in sorted name order: name, dtype, shape and bytes.

    Stable across loads, devices and processes (the bytes are the tensor's values, on the CPU,
    contiguous); any change to a value, a name or a shape changes it.
    """
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def base_weights_hash(model: nn.Module) -> str:
    """:func:`weights_hash` of the base model's weights (:func:`base_state_dict`)."""
    return weights_hash(base_state_dict(model))


def check_base(found: str, expected: str, base_name: str, source: str | Path) -> None:
    """Refuses an adapter whose base is not the model in hand.

    Raises:
        ArtifactError: naming `source`, the base model and both hashes.
    """
    if found != expected:
        raise ArtifactError(
            f"{source} is an adapter for base model {base_name!r} with weights sha256 "
            f"{expected}, but the base model in hand has sha256 {found}: the adapter's "
            "deltas only hold on the exact weights it was trained on; install or point "
            "`model` at that base model, or retrain the adapter on this one"
        )


# --- saving, loading, merging ----------------------------------------------------------------


def save_adapter(model: Any, folder: str | Path, base_name: str, adapter: str = "default") -> Path:
    """Writes only `adapter`'s weights and config to `folder` (peft's format), nothing of the base.

    The config names the base by `base_name` (the name it is loaded by, not a local path), and
    peft's own model card is left out: the artifact around the folder has its card.
    """
    folder = Path(folder)
    config = model.peft_config[adapter]
    config.base_model_name_or_path = base_name
    # embeddings are never adapted here; "auto" would ask the hub about the base's vocabulary
    model.save_pretrained(str(folder), selected_adapters=[adapter], save_embedding_layers=False)
    (folder / "README.md").unlink(missing_ok=True)
    return folder


def check_adapter_folder(folder: str | Path) -> Path:
    """`folder`, once it holds an adapter's weights and config.

    Raises:
        ArtifactError: naming the missing file.
    """
    folder = Path(folder)
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (folder / name).is_file():
            raise ArtifactError(f"adapter file {folder / name} is missing")
    return folder


def load_adapter(
    base: nn.Module,
    folder: str | Path,
    expected_hash: str,
    base_name: str,
    adapter: str = "default",
) -> Any:
    """The `PeftModel` of `base` with the adapter saved in `folder`, for inference.

    Raises:
        ArtifactError: when a file is missing, or `base`'s weights hash is not `expected_hash`.
    """
    from peft import PeftModel

    check_adapter_folder(folder)
    check_base(base_weights_hash(base), expected_hash, base_name, folder)
    with _quiet_peft():
        return PeftModel.from_pretrained(base, str(folder), adapter_name=adapter).eval()


def merge_lora(model: Any) -> nn.Module:
    """The base model with the active adapter folded into its weights (W + (alpha / r) B A).

    `model` is consumed: peft merges in place and returns the unwrapped base.
    """
    return model.merge_and_unload(safe_merge=True)


# --- an adapter artifact's parts --------------------------------------------------------------


def adapter_section(body: Any, base_name: str, adapter: str = "default") -> dict[str, Any]:
    """The manifest's `adapter` section for the peft model `body`: the method, the base model's
    name and weights hash (checked on loading), the adapted layers and the sizes."""
    config = body.peft_config[adapter]
    method = str(getattr(config.peft_type, "value", config.peft_type)).lower()
    shape = {"r": config.r, "alpha": config.lora_alpha} if method == "lora" else {}
    saved = sorted(config.modules_to_save or [])
    return {
        "method": method,
        "base_model": base_name,
        "base_sha256": base_weights_hash(body),
        **shape,
        "target_modules": sorted(config.target_modules),
        **({"modules_to_save": saved} if saved else {}),
        "adapter_parameters": sum(v.numel() for v in adapter_state_dict(body, adapter).values()),
        "base_parameters": sum(v.numel() for v in base_state_dict(body).values()),
    }


def head_tensors(heads: Mapping[str, nn.Module | None]) -> dict[str, torch.Tensor]:
    """The tensors of the task's heads (`name.key`), the ones that are not None."""
    return {
        f"{name}.{key}": value
        for name, head in heads.items()
        if head is not None
        for key, value in head.state_dict().items()
    }


def load_heads(heads: Mapping[str, nn.Module | None], path: Path, fits: str) -> None:
    """Loads the heads saved by :func:`head_tensors` in `path` into `heads`, strictly.

    Raises:
        ArtifactError: when the file is missing, or a head's tensors do not fit `fits` (what
            sized the heads: the labels of the artifact, say).
    """
    from shared.artifacts import load_weights

    tensors = load_weights(path)
    for name, head in heads.items():
        prefix = f"{name}."
        state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        if head is None and not state:
            continue
        try:
            head.load_state_dict(state)
        except (AttributeError, RuntimeError) as exc:
            raise ArtifactError(
                f"{path}: {name} does not fit {fits} ({str(exc).splitlines()[0]})"
            ) from None


# --- many tenants on one base ----------------------------------------------------------------


class AdapterCache(Generic[T]):
    """Named adapters on one `PeftModel`, at most `capacity` loaded, least recently used out.

    Each entry is a key (a tenant's name), its adapter inside the model (peft name
    :meth:`adapter_name`), and a value the caller keeps with it (e.g. the tenant's heads). The
    adapters already in the model when the cache is built (the served artifact's own) are
    pinned: never evicted, not counted against `capacity`. Hold `lock` around a forward pass
    that uses the cache's adapters, so that no eviction removes one mid-pass.

    Args:
        model: The `PeftModel` holding the base (once) and the adapters.
        capacity: Most adapters loaded besides the pinned ones.
    """

    def __init__(self, model: Any, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.model, self.capacity = model, capacity
        self.pinned = frozenset(model.peft_config)
        self.lock = threading.RLock()
        self.loads = self.evictions = 0
        self._entries: OrderedDict[str, T] = OrderedDict()

    @staticmethod
    def adapter_name(key: str) -> str:
        """peft's name of `key`'s adapter (prefixed: peft reserves names such as `lora_`)."""
        return f"tenant_{key}"

    def get(self, key: str) -> T | None:
        """`key`'s value, marked as just used; None when it is not loaded."""
        with self.lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: str, folder: str | Path, value: T) -> list[str]:
        """Loads the adapter in `folder` as `key`'s (replacing a loaded one) and keeps `value`
        with it; evicts the least recently used beyond `capacity`. Returns the evicted keys.

        The caller checks beforehand that the adapter belongs to this base (:func:`check_base`).
        """
        folder = check_adapter_folder(folder)
        with self.lock:
            self.remove(key)
            try:
                with _quiet_peft():
                    self.model.load_adapter(str(folder), adapter_name=self.adapter_name(key))
            except (ValueError, KeyError, RuntimeError) as exc:  # peft: layers or shapes differ
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise ArtifactError(f"adapter {folder} does not fit this base: {reason}") from None
            self.model.eval()  # new adapter layers start in training mode (dropout on)
            self._entries[key] = value
            self.loads += 1
            evicted = []
            while len(self._entries) > self.capacity:
                old, _ = self._entries.popitem(last=False)
                self._delete(self.adapter_name(old))
                self.evictions += 1
                evicted.append(old)
            if evicted:
                log.info("adapter cache: evicted %s", ", ".join(evicted))
            return evicted

    def remove(self, key: str) -> bool:
        """Unloads `key`'s adapter; False when it was not loaded."""
        with self.lock:
            if self._entries.pop(key, None) is None:
                return False
            self._delete(self.adapter_name(key))
            return True

    def _delete(self, name: str) -> None:
        """Deletes adapter `name` from the model; if it was the active one (a vertical that
        switches adapters, such as imaging's), a pinned adapter becomes active first."""
        if self.pinned and getattr(self.model, "active_adapter", None) == name:
            self.model.set_adapter(sorted(self.pinned)[0], inference_mode=True)
        self.model.delete_adapter(name)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        """The loaded keys, least recently used first."""
        with self.lock:
            return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """A snapshot of (key, value), least recently used first."""
        with self.lock:
            return iter(list(self._entries.items()))

    def adapter_bytes(self) -> int:
        """Bytes of every loaded adapter's tensors (the pinned ones included)."""
        return sum(
            p.numel() * p.element_size()
            for n, p in self.model.named_parameters()
            if LORA_KEY.search(f".{n}")
        )
