"""Load test of a vertical's service under good and bad traffic, batching on and off.

Starts the real app under uvicorn on 127.0.0.1, then 32 concurrent clients send, for a fixed
time, a mix of 90% good requests (the vertical's smoke request; chat from many sessions), 9% malformed ones (a wrong
field, a wrong file type) and 1% poison (a lone surrogate, a truncated image): once with
batching (max batch 32) and once without (max batch 1), in the same run. Every good request must
succeed (`good_success_rate` 1.0) and no bad one may get a 5xx. Writes
`bench/results/load_<vertical>.json`.

    python bench/load.py finance_sentiment --artifact demo_output/finance_sentiment/model/artifact
    python bench/load.py all   # smoke models trained on the spot
"""

from __future__ import annotations

import argparse
import io
import random
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
from shared.artifacts import read_manifest  # noqa: E402
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


JSON = {"content-type": "application/json"}


def _truncated_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (64, 64), 7).save(buffer, format="PNG")
    return buffer.getvalue()[:60]


BAD_TRAFFIC = {
    # vertical: (malformed request, poison request); `c` is an httpx client
    "customer_service": (
        lambda c: c.post("/v1/customer_service/chat", json={"session_id": 5}),
        lambda c: c.post("/v1/customer_service/chat", headers=JSON,
                         content=b'{"session_id": "p", "message": "card \\ud800 lost"}'),
    ),
    "finance_sentiment": (
        lambda c: c.post("/v1/finance_sentiment/score", json={"texts": "not a list"}),
        lambda c: c.post("/v1/finance_sentiment/score", headers=JSON,
                         content=b'{"texts": ["Shares fall", "ab\\ud800cd"]}'),
    ),
    "recommender": (
        lambda c: c.get("/v1/recommender/users/u0001/recommendations", params={"k": 0}),
        lambda c: c.post("/v1/recommender/recommend", headers=JSON,
                         content=b'{"history": [{"item_id": "\\udc00"}]}'),
    ),
    "medical_imaging": (
        lambda c: c.post("/v1/medical_imaging/predict", files={"file": ("a.txt", b"hello", "text/plain")}),
        lambda c: c.post("/v1/medical_imaging/predict", files={"file": ("t.png", _truncated_png(), "image/png")}),
    ),
}  # fmt: skip


GOOD_TRAFFIC = {
    # Chat requests of one session are answered in turn (a per-session lock): real traffic
    # comes from many sessions, so each request here is its own session.
    "customer_service": lambda c, data: c.post(
        "/v1/customer_service/chat",
        json={"session_id": f"load-{random.getrandbits(64):x}", "message": "I lost my card"},
    ),
}


def hammer(vertical, data: Path, port: int, clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads send the 90/9/1 mix for `seconds`; latency counts good requests only."""
    malformed, poison = BAD_TRAFFIC[vertical.name]
    good = GOOD_TRAFFIC.get(vertical.name, vertical.smoke_request)
    latencies: list[float] = []
    counts = {"good": 0, "good_ok": 0, "bad": 0, "bad_5xx": 0}
    stop, lock = time.perf_counter() + seconds, threading.Lock()

    def worker(seed: int):
        rng = random.Random(seed)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while time.perf_counter() < stop:
                draw, started = rng.random(), time.perf_counter()
                if draw < 0.90:
                    ok = good(client, data).status_code == 200
                    with lock:
                        counts["good"] += 1
                        counts["good_ok"] += ok
                        if ok:
                            latencies.append(time.perf_counter() - started)
                else:
                    status = (malformed if draw < 0.99 else poison)(client).status_code
                    with lock:
                        counts["bad"] += 1
                        counts["bad_5xx"] += status >= 500

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for seed in range(clients):
            pool.submit(worker, seed)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "good_success_rate": counts["good_ok"] / max(counts["good"], 1),
        **counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vertical", help="a vertical, or `all`")
    parser.add_argument(
        "--artifact", type=Path, help="artifact to serve; trains the smoke model if omitted"
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=ServeSettings().max_wait_ms)
    args = parser.parse_args()
    names = list(BAD_TRAFFIC) if args.vertical == "all" else [args.vertical]
    for name in names:
        run(name, args)


def run(name: str, args) -> None:
    vertical = get_vertical(name)
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
            device="auto",
            max_batch_size=batch,
            max_wait_ms=args.max_wait_ms if batch > 1 else 0.0,
            data_dir=work / f"state_{label}",
        )
        port = 18_000 + batch
        server = serve(create_app(vertical, artifact, settings), port)
        hammer(vertical, data, port, 4, 2.0)  # warm-up
        results[label] = hammer(vertical, data, port, args.clients, args.seconds)
        server.should_exit = True
        time.sleep(1.0)
    n, b = args.clients, results["batched"]
    write_result(
        f"load_{name}",
        dataset=(
            "the vertical's generated example data; served artifact: "
            f"{read_manifest(artifact).get('model_name', '?')}"
            + (
                " (smoke model trained here)"
                if args.artifact is None
                else f" ({args.artifact.name})"
            )
        ),
        protocol=(
            f"{n} concurrent clients, {args.seconds:.0f}s each; traffic 90% good (smoke request), "
            f"9% malformed, 1% poison; batching on (32, {args.max_wait_ms:g} ms) vs off"
        ),
        metrics={
            "good_success_rate": min(
                b["good_success_rate"], results["unbatched"]["good_success_rate"]
            ),
            "bad_5xx": b["bad_5xx"] + results["unbatched"]["bad_5xx"],
            f"rps_batched_{n}": b["rps"],
            f"rps_unbatched_{n}": results["unbatched"]["rps"],
            f"speedup_{n}": b["rps"] / max(results["unbatched"]["rps"], 1e-9),
            f"p50_ms_{n}": b["p50_ms"],
            f"p99_ms_{n}": b["p99_ms"],
            f"p99_over_p50_{n}": b["p99_ms"] / max(b["p50_ms"], 1e-9),
        },
        baselines={"unbatched": results["unbatched"], "batched_counts": b},
        seconds=time.perf_counter() - started,
        seed=None,
        notes="client seeds 0..clients-1 draw the traffic mix",
    )
    print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in b.items()})


if __name__ == "__main__":
    main()
