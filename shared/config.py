"""Configuration: YAML file -> pydantic model (unknown keys are errors) -> plain arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import VerticalsError

C = TypeVar("C", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config: a typo in a key is an error, not a silently ignored setting."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """Turns `["trainer.lr=1e-4", "epochs=3"]` into a nested dict; values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise VerticalsError(f"override {item!r} is not of the form key=value")
        node = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return nested


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Returns `base` with `update` merged in, recursing into nested dicts."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    config_cls: type[C],
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> C:
    """Builds a config from an optional YAML file plus `key=value` overrides.

    Raises:
        VerticalsError: naming the file and the offending keys when validation fails.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise VerticalsError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise VerticalsError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise VerticalsError(f"config file {path} must hold a mapping of keys to values")
        data, source = deep_merge(data, loaded), str(path)
    if isinstance(overrides, dict):
        data = deep_merge(data, overrides)
    else:
        data = deep_merge(data, parse_overrides(overrides))
    try:
        return config_cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise VerticalsError(f"invalid {config_cls.__name__} from {source}: {problems}") from None


class TrainerConfig(StrictModel):
    """Settings of the shared loop; every vertical's config nests one as `trainer`.

    A vertical sets its own defaults by subclassing (`class BotTrainerConfig(TrainerConfig):
    epochs: int = 4`), so a partial override (`trainer.max_steps=2`) keeps them.

    `monitor` names the metric that picks the best epoch: unset, the evaluator's primary metric
    (the training loss when there is no validation data). `monitor_mode` unset follows the
    evaluator's direction. `resume` continues a killed run from its last checkpoint.
    """

    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 5e-5
    backbone_lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    freeze_backbone_epochs: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    seed: int = 0
    monitor: str | None = None
    monitor_mode: Literal["min", "max"] | None = None
    early_stopping_patience: int | None = None
    num_workers: int = 0
    progress: bool = True
    tensorboard: bool | None = (
        None  # None: log to TensorBoard when it is installed (`tracking` extra)
    )
    resume: bool = False
