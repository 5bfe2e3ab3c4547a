"""Configuration: YAML file -> pydantic model (unknown keys are errors) -> plain arguments."""

from __future__ import annotations

import difflib
import textwrap
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import VerticalsError

C = TypeVar("C", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config: a typo in a key is an error, not a silently ignored setting."""

    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), use_attribute_docstrings=True
    )


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
    sources = []
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
        data = deep_merge(data, loaded)
        sources.append(f"config file {path}")
    if overrides:
        sources.append("overrides")
    if isinstance(overrides, dict):
        data = deep_merge(data, overrides)
    else:
        data = deep_merge(data, parse_overrides(overrides))
    try:
        return config_cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(config_cls, err) for err in exc.errors())
        source = " and ".join(sources) or "the defaults"
        raise VerticalsError(f"invalid {config_cls.__name__} from {source}: {problems}") from None


def _problem(config_cls: type[BaseModel], err: dict[str, Any]) -> str:
    """One validation error as `key: message`, with "did you mean" for an unknown key."""
    key = ".".join(str(p) for p in err["loc"]) or "<root>"
    if err["type"] != "extra_forbidden":
        return f"{key}: {err['msg']}"
    known = _fields_at(config_cls, err["loc"][:-1])
    close = difflib.get_close_matches(str(err["loc"][-1]), known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; known keys: {', '.join(known)}"
    return f"{key}: unknown key{hint}"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the nested config model at `loc` (empty when `loc` is not a model)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        sub = _model_of(field.annotation) if field is not None else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # `Sub | None`
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def config_yaml(cfg: BaseModel) -> str:
    """The whole config as YAML, each key commented with its meaning and type.

    The text loads back with `load_config` to the same config.
    """
    lines = [
        f"# {type(cfg).__name__}: every setting with its value here; edit and pass with --config"
    ]
    _yaml_lines(cfg, 0, lines)
    return "\n".join(lines) + "\n"


def _yaml_lines(cfg: BaseModel, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for name, field in type(cfg).model_fields.items():
        value = getattr(cfg, name)
        about = " ".join(_description(type(cfg), name).split())
        kind = _type_text(field.annotation)
        if about:
            for chunk in textwrap.wrap(f"{about} ({kind})", 96 - len(pad)):
                lines.append(f"{pad}# {chunk}")
        else:
            lines.append(f"{pad}# ({kind})")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            _yaml_lines(value, depth + 1, lines)
            continue
        lines.extend(pad + line for line in _yaml_entry(name, _plain(value)))


def _description(model: type[BaseModel], name: str) -> str:
    """A field's docstring, from the class that last documented it (a subclass changing only
    the default keeps its parent's text)."""
    for cls in model.__mro__:
        field = getattr(cls, "model_fields", {}).get(name)
        if field is not None and field.description:
            return field.description
    return ""


def _yaml_entry(name: str, value: Any) -> list[str]:
    """`name: value` lines: scalars and lists inline, mappings as indented blocks."""
    if isinstance(value, dict) and value:
        block = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=1000)
        return [f"{name}:"] + ["  " + line for line in block.splitlines()]
    inline = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000)
    inline = inline.removesuffix("\n").removesuffix("\n...")
    return [f"{name}: {inline}"]


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _type_text(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("NoneType", "None")


class TrainerConfig(StrictModel):
    """Settings of the shared loop; every vertical's config nests one as `trainer`.

    A vertical sets its own defaults by subclassing (`class BotTrainerConfig(TrainerConfig):
    epochs: int = 4`), so a partial override (`trainer.max_steps=2`) keeps them.

    `monitor` names the metric that picks the best epoch: unset, the evaluator's primary metric
    (the training loss when there is no validation data). `monitor_mode` unset follows the
    evaluator's direction. `resume` continues a killed run from its last checkpoint.
    """

    epochs: int = 3
    """Passes over the training data."""
    max_steps: int | None = None
    """Stop after this many optimizer steps in all (None: run every epoch)."""
    batch_size: int = 32
    """Examples per optimizer step (before `grad_accum`)."""
    lr: float = 5e-5
    """Peak learning rate of the head (and of the backbone unless `backbone_lr` is set)."""
    backbone_lr: float | None = None
    """Learning rate of the pretrained backbone (None: `lr`)."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and norms)."""
    warmup_ratio: float = 0.1
    """Share of the steps spent warming the learning rate up from 0."""
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    """Learning-rate decay after warm-up."""
    grad_accum: int = 1
    """Batches accumulated per optimizer step."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping norm (None: no clipping)."""
    freeze_backbone_epochs: int = 0
    """Epochs that train only the head before the backbone unfreezes."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast precision; auto is bf16 on a GPU that has it, else fp32."""
    device: str = "auto"
    """cpu, cuda, cuda:1, mps, or auto (the best available)."""
    seed: int = 0
    """Seed of data order, initialisation and splits."""
    monitor: str | None = None
    """Validation metric that picks the kept epoch (None: the evaluator's primary metric)."""
    monitor_mode: Literal["min", "max"] | None = None
    """Whether `monitor` is better low or high (None: the evaluator's direction)."""
    early_stopping_patience: int | None = None
    """Stop after this many epochs without a better `monitor` (None: never)."""
    num_workers: int = 0
    """DataLoader worker processes."""
    progress: bool = True
    """Show a progress bar with the loss."""
    tensorboard: bool | None = None
    """Log to TensorBoard under OUT/tensorboard (None: when it is installed, the tracking extra)."""
    resume: bool = False
    """Continue a killed run from OUT/checkpoint.pt (`verticals train --resume`)."""
