"""Self-describing artifact folders, written atomically and loaded without unpickling.

An artifact is a folder holding weights (safetensors), configs, the label map, metrics, the data
fingerprint, library versions (`manifest.json`) and a generated model card (`README.md`). It is
written to a temporary sibling folder and renamed into place, so a killed process never leaves
half an artifact, and a failed write leaves the previous artifact untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from shared.distributed import is_main_process
from shared.errors import ArtifactError

MANIFEST = "manifest.json"
ARTIFACT_FORMAT = 2
"""Version of the artifact layout: 2 since the configs' renames (`model`, `alerts`, monitors)."""
TRACKED_LIBRARIES = (
    "verticals",
    "torch",
    "transformers",
    "sentence-transformers",
    "timm",
    "faiss-cpu",
    "scikit-learn",
    "pandas",
    "numpy",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model depends on, plus Python's."""
    found = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


@contextlib.contextmanager
def write_artifact(
    final_dir: str | Path,
    *,
    vertical: str,
    model_name: str,
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    label_map: dict[str, int] | list[str] | None = None,
    data_fingerprint: str | None = None,
    training: Any = None,
    extra: dict[str, Any] | None = None,
) -> Iterator[Path]:
    """Yields a temporary folder to fill; on success adds the manifest and card and renames it.

    The caller writes weights and vertical-specific files into the yielded folder and may update
    `metrics` (the dict passed in) before the block ends. `training` is the loop's
    `TrainResult`: its summary (which metric chose the kept epoch, and that epoch) goes into the
    manifest's `training` section and the model card.

    Example:
        >>> with write_artifact(out, vertical="x", model_name="minilm", config=cfg) as tmp:
        ...     save_weights(tmp / "model.safetensors", model.state_dict())
    """
    if not is_main_process():  # data-parallel training: rank 0 alone publishes the artifact
        with tempfile.TemporaryDirectory() as scratch:
            yield Path(scratch)
        return
    with atomic_folder(final_dir) as tmp:
        yield tmp
        manifest = {
            "format": ARTIFACT_FORMAT,
            "vertical": vertical,
            "model_name": model_name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": config,
            "metrics": metrics or {},
            "label_map": label_map,
            "data_fingerprint": data_fingerprint,
            "training": training.summary() if training is not None else None,
            "versions": library_versions(),
            "files": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()),
            **(extra or {}),
        }
        save_json(tmp / MANIFEST, manifest)
        from shared.model_card import model_card

        (tmp / "README.md").write_text(model_card(manifest), encoding="utf-8")


@contextlib.contextmanager
def atomic_folder(final_dir: str | Path) -> Iterator[Path]:
    """Yields a temporary sibling folder to fill; on success it replaces `final_dir` whole.

    On any error the temporary folder is removed and `final_dir` is left as it was, so readers
    see the old folder or the new one, never a mix.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = final_dir.with_name(f".{final_dir.name}.tmp-{os.getpid()}-{time.time_ns()}")
    tmp.mkdir()
    try:
        yield tmp
        swap_into_place(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_folder(final_dir: str | Path) -> Path:
    """Restores `final_dir` after a crash inside `swap_into_place`, and returns it.

    The swap moves the old folder aside before renaming the new one into place; a process killed
    between the two renames leaves only the old folder, under `.<name>.old-<ns>`. Call this
    before reading a folder that `atomic_folder` writes.
    """
    final_dir = Path(final_dir)
    if not final_dir.exists():
        aside = sorted(final_dir.parent.glob(f".{final_dir.name}.old-*"))
        if aside:
            aside[-1].rename(final_dir)
    return final_dir


def swap_into_place(tmp: Path, final_dir: Path) -> None:
    """Renames `tmp` to `final_dir`; an existing folder is moved aside first, then removed.

    A crash between the two renames leaves the old folder aside; `recover_folder` brings it back.
    """
    old = None
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old-{time.time_ns()}")
        final_dir.rename(old)
    tmp.rename(final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(artifact_dir: str | Path, vertical: str | None = None) -> dict[str, Any]:
    """The artifact's manifest, checked for its format and, when given, its vertical.

    Raises:
        ArtifactError: when the folder or its manifest is missing or unreadable, was written in
            another format, or by another vertical than `vertical`.
    """
    path = Path(artifact_dir) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{artifact_dir} is not a verticals artifact (no {MANIFEST}); train one first"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is not a verticals manifest (not a JSON object)")
    found = manifest.get("format")
    if found != ARTIFACT_FORMAT:
        raise ArtifactError(
            f"{artifact_dir} has artifact format {found!r}; this version of verticals reads "
            f"format {ARTIFACT_FORMAT}: retrain it with `verticals train`"
        )
    if vertical is not None and manifest.get("vertical") != vertical:
        raise ArtifactError(
            f"{artifact_dir} is a {manifest.get('vertical')!r} artifact, not a {vertical!r} one; "
            f"pass an artifact trained with `verticals train {vertical}`"
        )
    return manifest


def save_weights(path: str | Path, state_dict: dict[str, Any]) -> None:
    """Saves tensors as safetensors (shared storage is cloned so every tensor is standalone)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}, str(path))


def load_weights(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Loads safetensors weights; no pickle is involved."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ArtifactError(f"weights file {path} is missing")
    return load_file(str(path), device=device)


def save_json(path: str | Path, obj: Any) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Writes one JSON object per line; any Unicode is kept as is (not escaped)."""
    Path(path).write_text(
        "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows),
        encoding="utf-8",
    )


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Reads what `write_jsonl` wrote.

    Lines are split on `\\n` alone: `str.splitlines` would also split inside a string holding
    U+2028, U+2029 or U+0085, which JSON leaves unescaped, and the file would not read back.
    """
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"artifact file {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))
