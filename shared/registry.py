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

from shared.settings import ServeSettings

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

    # Optional: an `engine` attribute holding a `shared.engine.InferenceEngine` (built with
    # `InferenceEngine.from_settings`), which the service starts in its lifespan; and `close()`.


@dataclass(frozen=True)
class Compressor:
    """What a vertical supplies to `verticals compress` (the core's side: `shared.compression`).

    Attributes:
        methods: The methods it supports, among `shared.compression.METHODS`.
        apply: `(job: shared.compression.CompressJob) -> dict`: rewrites `job.out`, a copy of
            the artifact's files, into the compressed artifact, and returns the parameters to
            record (the alpha sweep, the agreement with the original's logits); under the key
            `"manifest"`, manifest keys that the new artifact replaces (a distilled student's
            config and metrics). The vertical's `load` reads the method back from the
            manifest's `compression` section.
        validation: `(artifact_dir, data_path) -> shared.compression.Validation`: the inputs of
            the data's validation split and the primary metric of their predictions.
    """

    methods: tuple[str, ...]
    apply: Callable[[Any], dict[str, Any]]
    validation: Callable[[Path, Path], Any]


@dataclass(frozen=True)
class Vertical:
    """What a vertical supplies to the core. Data, not a base class.

    Attributes:
        name: Package-style name; also the URL segment `/v1/<name>/`.
        summary: One line for `verticals list`.
        config_cls: Pydantic model of the training config (`extra="forbid"`).
        schemas: Named table schemas of the vertical's input files.
        train: `(config, data_path, out_dir) -> artifact_dir`; trains through `shared.training`.
        load: `(artifact_dir, settings) -> Runtime`; `settings` is an instance of
            `settings_cls`. Call it through :func:`load_runtime`, which checks the artifact.
        build_router: `() -> fastapi.APIRouter`; its routes reach the runtime through
            `shared.serving.get_runtime`.
        demo: `(workdir) -> dict` of headline metrics; runs on embedded, generated data.
        example_data: `(folder) -> data_path`; writes a tiny generated dataset for smoke tests.
        smoke_overrides: Config overrides for a two-step run with a tiny random model.
        example_inputs: `(data_path) -> rows`; inputs for `Runtime.predict` from the example data.
        smoke_request: `(client, data_path) -> response`; one request through the service.
        evaluate: Optional `(runtime, data_path) -> shared.reports.EvaluationReport` for
            `verticals evaluate` (a plain metrics dict is accepted too).
        evaluate_conversations: Optional `(runtime, yaml_path) -> EvaluationReport`, for
            scripted conversation tests (`verticals evaluate VERTICAL --conversations FILE`).
        chat: Optional `(runtime) -> None`, an interactive shell (`verticals chat VERTICAL`).
        settings_cls: The deployment settings: `ServeSettings` or a subclass adding the
            vertical's own knobs (read from the environment by the core, once).
        compress: Optional :class:`Compressor` for `verticals compress` (int8, ONNX, ...).
    """

    name: str
    summary: str
    config_cls: type
    train: Callable[[Any, Path, Path], Path]
    load: Callable[[Path, ServeSettings], Runtime]
    build_router: Callable[[], Any]
    demo: Callable[[Path], dict[str, Any]]
    example_data: Callable[[Path], Path]
    example_inputs: Callable[[Path], list[dict[str, Any]]]
    smoke_overrides: Mapping[str, Any] = field(default_factory=dict)
    smoke_request: Callable[[Any, Path], Any] | None = None
    evaluate: Callable[[Runtime, Path], Any] | None = None
    evaluate_conversations: Callable[[Runtime, Path], Any] | None = None
    chat: Callable[[Runtime], None] | None = None
    schemas: Mapping[str, Any] = field(default_factory=dict)
    settings_cls: type[ServeSettings] = ServeSettings
    compress: Compressor | None = None


def build_settings(
    vertical: Vertical, base: ServeSettings | None = None, **overrides: Any
) -> ServeSettings:
    """The vertical's settings: the environment, then the fields set on `base`, then `overrides`.

    A plain `ServeSettings` given for a vertical with its own settings class is upgraded to that
    class, keeping the fields it sets.
    """
    given = base.model_dump(exclude_unset=True) if base is not None else {}
    return vertical.settings_cls(**{**given, **overrides})


def load_runtime(
    vertical: Vertical, artifact_dir: str | Path, settings: ServeSettings | None = None
) -> Runtime:
    """Checks that `artifact_dir` is an artifact of `vertical` in a format this version reads,
    then loads it with `vertical.load`.

    Raises:
        ArtifactError: naming the folder and the problem (missing, other vertical, old format).
    """
    from shared.artifacts import read_manifest

    read_manifest(artifact_dir, vertical=vertical.name)
    return vertical.load(Path(artifact_dir), build_settings(vertical, settings))


def load_artifact(artifact_dir: str | Path, **settings: Any) -> Runtime:
    """The runtime of any artifact, its vertical read from the manifest.

    Example:
        >>> model = load_artifact("runs/fin/artifact", device="cpu")
        >>> model.predict([{"text": "Norvale Bank cuts its outlook"}])

    Raises:
        ArtifactError: when the folder is not an artifact this version reads.
        KeyError: when its vertical is not installed.
    """
    from shared.artifacts import read_manifest

    vertical = get_vertical(read_manifest(artifact_dir)["vertical"])
    return load_runtime(vertical, artifact_dir, build_settings(vertical, **settings))


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
