"""The vertical contract and its discovery through entry points.

A vertical is one package plus one line in `pyproject.toml`::

    [project.entry-points."verticals.verticals"]
    my_vertical = "my_vertical:VERTICAL"

where `VERTICAL` is a :class:`Vertical`. The core never names a vertical: it finds them here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

ENTRY_POINT_GROUP = "verticals.verticals"


@runtime_checkable
class Runtime(Protocol):
    """A loaded artifact, ready to predict. Built by `Vertical.load`."""

    def predict(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Predicts for rows of the vertical's input table (the same rows `verticals predict` reads)."""
        ...

    def info(self) -> dict[str, Any]:
        """Model name, version and metrics, served at `/v1/info`."""
        ...

    # Optional: an `engine` attribute holding a `shared.engine.InferenceEngine`; the service
    # starts it in its lifespan and applies the batching settings to it; and `close()`.


@dataclass(frozen=True)
class Vertical:
    """What a vertical supplies to the core. Data, not a base class.

    Attributes:
        name: Package-style name; also the URL segment `/v1/<name>/`.
        summary: One line for `verticals list`.
        config_cls: Pydantic model of the training config (`extra="forbid"`).
        schemas: Named table schemas of the vertical's input files.
        train: `(config, data_path, out_dir) -> artifact_dir`; trains through `shared.training`.
        load: `(artifact_dir, device) -> Runtime`.
        build_router: `() -> fastapi.APIRouter`; its routes reach the runtime through
            `shared.serving.get_runtime`.
        demo: `(workdir) -> dict` of headline metrics; runs on embedded, generated data.
        example_data: `(folder) -> data_path`; writes a tiny generated dataset for smoke tests.
        smoke_overrides: Config overrides for a two-step run with a tiny random model.
        example_inputs: `(data_path) -> rows`; inputs for `Runtime.predict` from the example data.
        smoke_request: `(client, data_path) -> response`; one request through the service.
        evaluate: Optional `(runtime, data_path) -> metrics` for `verticals evaluate`.
    """

    name: str
    summary: str
    config_cls: type
    train: Callable[[Any, Path, Path], Path]
    load: Callable[[Path, str], Runtime]
    build_router: Callable[[], Any]
    demo: Callable[[Path], dict[str, Any]]
    example_data: Callable[[Path], Path]
    example_inputs: Callable[[Path], list[dict[str, Any]]]
    smoke_overrides: Mapping[str, Any] = field(default_factory=dict)
    smoke_request: Callable[[Any, Path], Any] | None = None
    evaluate: Callable[[Runtime, Path], dict[str, float]] | None = None
    schemas: Mapping[str, Any] = field(default_factory=dict)


def vertical_names() -> list[str]:
    """Names of the registered verticals, without importing any of them."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def get_vertical(name: str) -> Vertical:
    """Imports and returns one registered vertical.

    Raises:
        KeyError: with the registered names, when `name` is not one of them.
    """
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            vertical = ep.load()
            if not isinstance(vertical, Vertical):
                raise TypeError(f"entry point {ep.value!r} is not a shared.registry.Vertical")
            return vertical
    raise KeyError(
        f"unknown vertical {name!r}; registered: {', '.join(vertical_names()) or 'none'}"
    )


def all_verticals() -> list[Vertical]:
    """Every registered vertical, imported."""
    return [get_vertical(name) for name in vertical_names()]
