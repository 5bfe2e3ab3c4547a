"""`/chat` latency over HTTP with a 1,000-answer knowledge base: one client, then 16 concurrent.

The service runs in-process under uvicorn (the same app `verticals serve` builds); clients are
httpx over localhost. The KB is the demo bank's 55 answers plus generated ones added through the
KB-update path (no retraining) up to `--kb-size`. Messages cycle through the demo phrasings, each
request in its own session.

    python -m bench.customer_service_latency                    # trains a 1-step artifact first
    python -m bench.customer_service_latency --artifact /tmp/demo_cs/customer_service/run/artifact
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import write_result
from bench.customer_service_common import demo_messages, request_bench_parser

TOPICS = [
    "card",
    "account",
    "loan",
    "transfer",
    "savings",
    "mortgage",
    "insurance",
    "pension",
    "app",
    "branch",
]
ACTIONS = [
    "fees for",
    "limits of",
    "opening a",
    "closing a",
    "documents for",
    "tax rules on",
    "upgrading a",
    "problems with a",
    "interest on a",
    "rewards of a",
]
AUDIENCES = [
    "students",
    "families",
    "businesses",
    "retirees",
    "new customers",
    "expats",
    "minors",
    "couples",
    "freelancers",
    "charities",
]


def synthetic_answers(n: int) -> list[dict]:
    """`n` distinct generated KB answers (templates combined; not from any dataset)."""
    combos = itertools.islice(itertools.product(ACTIONS, TOPICS, AUDIENCES), n)
    return [
        {
            "answer_id": f"S{i:04d}",
            "title": f"{a} {t} for {u}".capitalize(),
            "answer": f"Here is how {a} {t} works for {u} at Larkspur Bank: see the {t} section of the app.",
        }
        for i, (a, t, u) in enumerate(combos)
    ]


def build_artifact(workdir: Path) -> Path:
    from customer_service.config import CustomerServiceConfig
    from customer_service.kb_data import write_demo_data
    from customer_service.training import train
    from shared.config import load_config

    cfg = load_config(
        CustomerServiceConfig,
        overrides={"trainer": {"epochs": 1, "max_steps": 1, "progress": False}},
    )
    return train(cfg, write_demo_data(workdir / "data"), workdir / "run")


def serve(app) -> tuple[str, object]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def timed_requests(base: str, messages: list[str], prefix: str) -> list[float]:
    import httpx

    out = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for i, message in enumerate(messages):
            started = time.perf_counter()
            response = client.post(
                "/v1/customer_service/chat",
                json={"session_id": f"{prefix}-{i}", "message": message},
            )
            out.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return out


def measure(
    base: str, messages: list[str], requests: int, clients: int
) -> tuple[list[float], list[float]]:
    """Milliseconds per request: `requests` sequential ones after 20 warm-up, then `clients`
    concurrent clients sending about as many."""
    timed_requests(base, messages[:20], "warm")
    single = timed_requests(
        base, list(itertools.islice(itertools.cycle(messages), requests)), "one"
    )
    per_client = max(1, requests // clients)
    with ThreadPoolExecutor(clients) as pool:
        runs = pool.map(
            lambda c: timed_requests(base, messages[c::clients][:per_client] * 2, f"c{c}"),
            range(clients),
        )
        concurrent = [x for run in runs for x in run]
    return single, concurrent


def main() -> None:
    from customer_service import VERTICAL
    from shared.serving import ServeSettings, create_app

    parser = request_bench_parser(__doc__, requests=200, artifact_required=False)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        source = args.artifact or build_artifact(Path(tmp) / "build")
        artifact = Path(shutil.copytree(source, Path(tmp) / "artifact"))
        app = create_app(VERTICAL, artifact, ServeSettings(device="cpu"))
        base, server = serve(app)
        runtime = app.state.runtime
        runtime.add_answers(synthetic_answers(args.kb_size - len(runtime.kb_snapshot().answers)))
        kb_size = len(runtime.kb_snapshot().answers)
        single, concurrent = measure(base, demo_messages(), args.requests, args.clients)
        engine = runtime.engine.stats.as_dict()
        server.should_exit = True
    import torch

    write_result(
        "customer_service_latency",
        dataset="generated bank KB",
        protocol=(
            f"/chat over HTTP (uvicorn in-process, httpx), KB of {kb_size} answers (+ paraphrases), "
            f"{len(single)} sequential requests after 20 warm-up; then {args.clients} concurrent clients, "
            f"{len(concurrent)} requests; torch threads {torch.get_num_threads()}, encoder "
            f"{getattr(runtime, 'precision', 'fp32')}"
        ),
        metrics={
            "p50_ms": float(np.percentile(single, 50)),
            "p95_ms": float(np.percentile(single, 95)),
            "p50_ms_concurrent_16": float(np.percentile(concurrent, 50)),
            "p95_ms_concurrent_16": float(np.percentile(concurrent, 95)),
            "throughput_rps_concurrent_16": float(
                len(concurrent) / (sum(concurrent) / 1000 / args.clients)
            ),
            "mean_batch_size": float(engine["mean_batch_size"]),
        },
        anchors={"target_p50_ms_single_client": 15.0},
        seconds=time.perf_counter() - started,
        seed=None,
        notes=(
            "CPU shared with other jobs: timings are noisy; 1-minute load average "
            f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        ),
    )


if __name__ == "__main__":
    main()
