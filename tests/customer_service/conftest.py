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


@pytest.fixture(scope="session")
def cs_minilm(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, artifact) of the demo bank on the real MiniLM, the encoder kept frozen.

    One epoch of the intent head over cached embeddings (~15 s on two cores): fast enough for
    `make test`, and the act classifier, retrieval and calibration are the demo's own.
    """
    from customer_service.config import CustomerServiceConfig, CustomerServiceTrainerConfig
    from customer_service.kb_data import write_demo_data
    from customer_service.training import train

    root = tmp_path_factory.mktemp("cs_minilm")
    data = write_demo_data(root / "data")
    cfg = CustomerServiceConfig(
        recipe="finetune",  # the loop, head only (the frozen epochs cover the run): one fit
        max_seq_length=32,
        trainer=CustomerServiceTrainerConfig(epochs=1, freeze_backbone_epochs=1, progress=False),
    )
    return data, train(cfg, data, root / "run")


@pytest.fixture(scope="session")
def cs_minilm_bot(cs_minilm):
    """The MiniLM demo bot, loaded once (tests use their own session ids)."""
    from customer_service import VERTICAL
    from shared.registry import build_settings, load_runtime

    return load_runtime(VERTICAL, cs_minilm[1], build_settings(VERTICAL, device="cpu"))
