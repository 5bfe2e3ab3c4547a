"""Load test of a vertical's service: requests/s and latency with dynamic batching on and off.

Starts the real app under uvicorn on 127.0.0.1, then sends the vertical's smoke request from 32
concurrent clients for a fixed time, once with batching (max batch 32) and once without (max batch
1), in the same run. Writes `bench/results/load_<vertical>.json`.

    python bench/load.py finance_sentiment --seconds 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import write_result  # noqa: E402
from shared.config import load_config  # noqa: E402
from shared.registry import get_vertical  # noqa: E402
from shared.serving import ServeSettings, create_app  # noqa: E402


def serve(app, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 120
    while not server.started and time.time() < deadline:
        time.sleep(0.1)
    return server


def hammer(vertical, data: Path, port: int, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    def worker():
        nonlocal errors
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = vertical.smoke_request(client, data)
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(worker)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vertical")
    parser.add_argument(
        "--artifact", type=Path, help="artifact to serve; trains the smoke model if omitted"
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()

    vertical = get_vertical(args.vertical)
    work = Path(tempfile.mkdtemp(prefix="load-"))
    data = vertical.example_data(work / "data")
    artifact = args.artifact
    if artifact is None:
        cfg = load_config(vertical.config_cls, overrides=dict(vertical.smoke_overrides))
        artifact = vertical.train(cfg, data, work / "run")

    started = time.perf_counter()
    results = {}
    for label, batch in (("batched", 32), ("unbatched", 1)):
        settings = ServeSettings(
            device="auto", max_batch_size=batch, max_wait_ms=5.0 if batch > 1 else 0.0
        )
        port = 18_000 + batch
        server = serve(create_app(vertical, artifact, settings), port)
        hammer(vertical, data, port, 4, 2.0)  # warm-up
        results[label] = hammer(vertical, data, port, args.clients, args.seconds)
        server.should_exit = True
        time.sleep(1.0)
    n = args.clients
    write_result(
        f"load_{args.vertical}",
        dataset="the vertical's generated example data",
        protocol=f"{n} concurrent clients, {args.seconds:.0f}s each, smoke request, batching on (32, 5 ms) vs off",
        metrics={
            f"rps_batched_{n}": results["batched"]["rps"],
            f"rps_unbatched_{n}": results["unbatched"]["rps"],
            f"p50_ms_{n}": results["batched"]["p50_ms"],
            f"p99_ms_{n}": results["batched"]["p99_ms"],
            "errors": results["batched"]["errors"] + results["unbatched"]["errors"],
        },
        baselines={"unbatched": results["unbatched"]},
        seconds=time.perf_counter() - started,
        seed=None,
        notes=f"artifact: {artifact}",
    )


if __name__ == "__main__":
    main()
