"""Helpers every benchmark script uses: data paths, result files, timing."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from shared.artifacts import library_versions

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VERTICALS_BENCH_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a benchmark script, with its docstring (kept as written) as help.

    Example:
        >>> parser = bench_parser(__doc__)
    """
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def hardware() -> str:
    """A short description of the machine the figures were measured on."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch threads {torch.get_num_threads()}"


def git_commit() -> str:
    try:
        return subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True
        ).strip()
    except Exception:
        return "unknown"


def write_result(
    name: str,
    *,
    dataset: str,
    protocol: str,
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]] | None = None,
    anchors: dict[str, Any] | None = None,
    seconds: float,
    seed: int | None,
    notes: str = "",
) -> Path:
    """Writes `bench/results/<name>.json` in the format BENCHMARKS.md asks for and prints it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "dataset": dataset,
        "protocol": protocol,
        "metrics": metrics,
        "baselines": baselines or {},
        "anchors": anchors or {},
        "seconds": round(seconds, 1),
        "hardware": hardware(),
        "versions": library_versions(),
        "commit": git_commit(),
        "seed": seed,
        "notes": notes,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(
        json.dumps({"benchmark": name, "metrics": metrics, "baselines": baselines or {}}, indent=2)
    )
    return path


class Timer:
    """`with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
