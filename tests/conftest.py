"""Fixtures shared across the suite: a registered throwaway vertical and the real packaged models."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

TOY_SOURCE = Path(__file__).parent / "shared" / "toy_vertical_src.py"


@pytest.fixture(scope="session")
def toy_vertical(tmp_path_factory):
    """Installs `toy_vertical` as a new vertical: one folder plus one entry-point line, nothing else."""
    import importlib.metadata as md

    root = tmp_path_factory.mktemp("site")
    package = root / "toy_vertical"
    package.mkdir()
    shutil.copy(TOY_SOURCE, package / "__init__.py")
    dist = root / "toy_vertical-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-vertical\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text("[verticals.verticals]\ntoy = toy_vertical:VERTICAL\n")
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    md.distributions.cache_clear() if hasattr(md.distributions, "cache_clear") else None
    yield "toy"
    sys.path.remove(str(root))
    sys.modules.pop("toy_vertical", None)
    importlib.invalidate_caches()


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2, loaded once for the integration tests."""
    from shared.models import load_model

    return load_model("minilm", "sentence-encoder")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """`trained(name)`: a smoke artifact of a vertical, trained once per session on its example
    data (copy it before writing into it)."""
    from shared.config import load_config
    from shared.registry import get_vertical

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            vertical = get_vertical(name)
            root = tmp_path_factory.mktemp(f"smoke_{name}")
            cfg = load_config(vertical.config_cls, overrides=dict(vertical.smoke_overrides))
            cache[name] = vertical.train(cfg, vertical.example_data(root / "data"), root / "run")
        return cache[name]

    return get
