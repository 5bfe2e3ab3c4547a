"""Fixtures of the customer_service tests: one tiny trained artifact, copied per test that edits it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cs_trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, artifact) trained for two steps with the random 2-layer BERT."""
    from customer_service import SMOKE_OVERRIDES
    from customer_service.config import CustomerServiceConfig
    from customer_service.kb_data import write_demo_data
    from customer_service.training import train
    from shared.config import load_config

    root = tmp_path_factory.mktemp("cs")
    data = write_demo_data(root / "data")
    cfg = load_config(CustomerServiceConfig, overrides=dict(SMOKE_OVERRIDES))
    return data, train(cfg, data, root / "run")


@pytest.fixture()
def cs_artifact(cs_trained, tmp_path) -> Path:
    """A private copy of the trained artifact (KB edits write into it)."""
    return Path(shutil.copytree(cs_trained[1], tmp_path / "artifact"))


@pytest.fixture()
def cs_bot(cs_artifact):
    from customer_service import VERTICAL
    from shared.registry import load_runtime
    from shared.settings import ServeSettings

    return load_runtime(VERTICAL, cs_artifact, ServeSettings(device="cpu"))
