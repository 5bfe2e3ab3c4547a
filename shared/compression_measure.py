"""Measuring artifacts side by side: size, latency, throughput and the validation metric.

`verticals compress` measures the original and the compressed artifact here, in rounds that
visit each in turn, so a change of machine load hits all alike; benchmarks measure several at
once the same way.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.errors import DataError
from shared.registry import Runtime, Vertical, build_settings, load_runtime


@dataclass(frozen=True)
class Validation:
    """The validation split as `Compressor.validation` builds it: `inputs` (rows for
    `Runtime.predict`), `score` (their predictions, in order -> the primary metric, higher is
    better), the `metric`'s name (`val_macro_f1`) and a `description` of the rows."""

    inputs: list[dict[str, Any]]
    score: Callable[[list[dict[str, Any]]], float]
    metric: str
    description: str


# --- measurement -----------------------------------------------------------------------------


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def folder_size_mb(folder: str | Path) -> float:
    """Bytes on disk of every file under `folder`, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in _files(Path(folder))) / 1e6


def _seconds(step: Callable[..., Any], *args: Any) -> float:
    started = time.perf_counter()
    step(*args)
    return time.perf_counter() - started


def measure_runtimes(
    runtimes: Mapping[str, Runtime],
    folders: Mapping[str, Path],
    validation: Validation,
    rounds: int = 3,
    repeats: int = 20,
    batch_items: int = 64,
) -> dict[str, dict[str, float]]:
    """Size, latency, throughput and metric of each runtime, side by side; the first is the
    baseline that `speedup` and `metric_delta` compare against.

    Each runtime first predicts every validation input (its metric; also its warm-up). Then,
    in `rounds` rounds that visit every runtime in turn (so a change of machine load hits all
    alike), it predicts `repeats` single inputs (p50 latency) and one batch of `batch_items`.

    Returns:
        Per runtime: `size_mb`, `p50_ms` (single input), `throughput` (inputs/s in batches),
        `speedup` (baseline p50 / p50), `metric` and `metric_delta` (metric - baseline's).
    """
    inputs = validation.inputs
    if not inputs:
        raise DataError(f"{validation.description} has no rows to measure on")
    metric = {name: validation.score(rt.predict(inputs)) for name, rt in runtimes.items()}
    single: dict[str, list[float]] = {name: [] for name in runtimes}
    batched: dict[str, list[float]] = {name: [] for name in runtimes}
    batch = (inputs * (1 + batch_items // len(inputs)))[:batch_items]
    for _ in range(rounds):
        for name, rt in runtimes.items():
            for i in range(repeats):
                single[name].append(_seconds(rt.predict, [inputs[i % len(inputs)]]))
            batched[name].append(_seconds(rt.predict, batch))
    base = next(iter(runtimes))
    p50 = {name: statistics.median(times) * 1000 for name, times in single.items()}
    return {
        name: {
            "size_mb": folder_size_mb(folders[name]),
            "p50_ms": p50[name],
            "throughput": len(batch) / statistics.median(batched[name]),
            "speedup": p50[base] / p50[name],
            "metric": metric[name],
            "metric_delta": metric[name] - metric[base],
        }
        for name in runtimes
    }


def format_table(rows: Mapping[str, Mapping[str, float]], metric: str) -> str:
    """The measured rows as an aligned text table, one line per model."""
    header = (
        f"{'model':<12} {'size MB':>8} {'p50 ms':>8} {'inputs/s':>9} {'speedup':>8} "
        f"{metric:>14} {'delta':>8}"
    )
    lines = [header, "-" * len(header)]
    for name, r in rows.items():
        lines.append(
            f"{name:<12} {r['size_mb']:>8.1f} {r['p50_ms']:>8.2f} {r['throughput']:>9.1f} "
            f"{r['speedup']:>7.2f}x {r['metric']:>14.4f} {r['metric_delta']:>+8.4f}"
        )
    return "\n".join(lines)


def measure_artifacts(
    vertical: Vertical,
    folders: Mapping[str, Path],
    validation: Validation,
    device: str = "cpu",
    rounds: int = 3,
) -> dict[str, Any]:
    """Artifacts loaded together and measured side by side (:func:`measure_runtimes`); the
    first is the baseline. Returns the rows with the split, metric, threads and device."""
    settings = build_settings(vertical, device=device)
    runtimes = {name: load_runtime(vertical, folder, settings) for name, folder in folders.items()}
    try:
        rows = measure_runtimes(runtimes, folders, validation, rounds=rounds)
    finally:
        for runtime in runtimes.values():
            getattr(runtime, "close", lambda: None)()
    return {
        "split": validation.description,
        "metric": validation.metric,
        "threads": torch.get_num_threads(),
        "device": device,
        "rows": rows,
    }
