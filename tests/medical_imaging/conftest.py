"""Helpers of the imaging tests: a MedMNIST-style npz, and `verticals train`/`evaluate` via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import medical_imaging
from shared.cli import app

runner = CliRunner()


def smoke_args() -> list[str]:
    """The vertical's smoke overrides as `key=value` arguments of `verticals train`."""
    args = []
    for key, value in medical_imaging.SMOKE_OVERRIDES.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            text = str(v).lower() if isinstance(v, bool) else str(v)
            args.append(f"{key}.{sub}={text}" if sub else f"{key}={text}")
    return args


def _write_npz(path: Path, n_classes: int = 2, seed: int = 0) -> Path:
    """A MedMNIST-style npz: 28 px gray images, integer labels (N, 1) cycling 0..n_classes-1,
    16 train / 8 val / 8 test."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 16), ("val", 8), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes).reshape(n, 1)
    np.savez(path, **arrays)
    return path


def _train_cli(data: Path, out: Path, *overrides: str):
    """`verticals train medical_imaging` with the smoke overrides and `overrides` after them."""
    args = ["train", "medical_imaging", "--data", str(data), "--out", str(out)]
    return runner.invoke(app, [*args, *smoke_args(), *overrides])


def _evaluate_cli(artifact: Path, data: Path, out: Path) -> dict:
    """`verticals evaluate medical_imaging`; returns the report's `metrics.json`."""
    args = ["evaluate", "medical_imaging", "--artifact", str(artifact), "--data", str(data)]
    result = runner.invoke(app, [*args, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="session")
def write_npz():
    return _write_npz


@pytest.fixture(scope="session")
def train_cli():
    return _train_cli


@pytest.fixture(scope="session")
def evaluate_cli():
    return _evaluate_cli
