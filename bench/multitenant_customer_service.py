"""Many customers' bots on one base: memory for 1, 10 and 100 tenants, and the latency of switching.

Protocol (as `bench.multitenant`, for customer_service): one bot adapter artifact on MiniLM (LoRA
r=8 on every Linear layer, `adapter.method=lora`, trained by `verticals train` for `--steps`
steps on the project's demo bank: the figures here are about memory and time, not accuracy),
cloned into 100 tenant folders whose adapter is redrawn (so that every tenant computes
something else). Each tenant is a whole bot: its KB (the demo's, with its vectors), intent head,
dialogue acts and calibration.

- Memory, side by side: `param_mb`, the bytes of the model tensors held (one base plus every
  loaded adapter, against one full encoder per tenant; the heads, acts and KB vectors are the
  same on both sides and counted apart as `per_tenant_rest_mb`); and `rss_mb`, the growth of
  resident memory (psutil) of a fresh process from before it loads: the served bot with N
  tenants answering (the service's path, `BotTenants`), against N full bots (`load_runtime`
  of N copies of the lora-merged artifact, each from its own files). Full bots are loaded for
  N = 1 and 10 and extrapolated linearly to 100 (`full_rss_extrapolated`).
- Latency: p50 of one message through the HTTP API (`TestClient`, `POST /chat`), interleaved
  rounds of: the served bot (no header), one tenant again and again, two tenants alternating
  (both cached), and two tenants alternating with a cache of one adapter (each request loads
  its tenant from disk: the cost of a miss). Then 32 messages of one tenant against 32 messages
  of 32 tenants in one engine batch (`BotTenants.encode_items`: one forward, per-row adapters)
  and against the same 32 embedded one call each.

    OMP_NUM_THREADS=1 python -m bench.multitenant_customer_service     # about 6 minutes
"""

from __future__ import annotations

import multiprocessing
import shutil
import statistics
import time
from pathlib import Path

import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from bench.common import bench_parser, write_result
from bench.multitenant import rss_mb
from customer_service import VERTICAL
from customer_service.adapter import transformer_of
from customer_service.config import CustomerServiceConfig, CustomerServiceSettings
from customer_service.kb_data import write_demo_data
from customer_service.training import train
from shared.adapters import base_state_dict
from shared.compression import compress_artifact, folder_size_mb
from shared.config import load_config
from shared.registry import load_runtime
from shared.serving import create_app

URL = "/v1/customer_service/chat"
COUNTS = (1, 10, 100)
FULL_LOADED = (1, 10)
MESSAGES = [
    "I lost my card",
    "how do I raise my card limit",
    "what is the annual fee",
    "can I pay with my phone",
]


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/multitenant_cs"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


def make_tenants(artifact: Path, folder: Path, count: int) -> list[str]:
    """`count` copies of the adapter bot, each with its adapter redrawn."""
    shutil.rmtree(folder, ignore_errors=True)
    names = [f"t{i:03d}" for i in range(count)]
    for i, name in enumerate(names):
        shutil.copytree(artifact, folder / name)
        generator = torch.Generator().manual_seed(i)
        path = folder / name / "adapter" / "adapter_model.safetensors"
        tensors = load_file(path)
        noisy = {
            k: v + torch.randn(v.shape, generator=generator) * v.std() for k, v in tensors.items()
        }
        save_file(noisy, str(path))
    return names


def _tensor_mb(tensors) -> float:
    return sum(v.numel() * v.element_size() for v in tensors) / 1e6


def shared_memory(tenants: Path, artifact: Path, names: list[str]) -> dict:
    """The served bot; 1, 10, then 100 tenants loaded and answering."""
    torch.set_num_threads(1)
    start = rss_mb()
    settings = CustomerServiceSettings(
        device="cpu", tenants_dir=tenants, tenant_cache_size=max(COUNTS)
    )
    bot = load_runtime(VERTICAL, artifact, settings)
    pool = bot.tenants
    base = _tensor_mb(base_state_dict(pool.model).values())
    kb = bot.kb.snapshot()
    rest = kb.vectors.nbytes / 1e6 + (bot.head[0].nbytes + bot.head[1].nbytes) / 1e6
    rows, loaded = {}, 0
    for count in COUNTS:
        for name in names[loaded:count]:
            pool.bot(name).chat("s", MESSAGES[0])
        loaded = count
        assert len(pool.cache) == count
        rows[count] = {
            "shared_param_mb": base + pool.cache.adapter_bytes() / 1e6,
            "shared_rss_mb": rss_mb() - start,
        }
    return {"rows": rows, "base_param_mb": base, "per_tenant_rest_mb": rest}


def full_memory(merged: Path) -> dict[int, float]:
    """RSS growth with 1, then 10 full bots loaded and answering, each from its own files."""
    torch.set_num_threads(1)
    copies = []
    for i in range(max(FULL_LOADED)):
        copy = merged.with_name(f"{merged.name}-{i}")
        shutil.rmtree(copy, ignore_errors=True)
        copies.append(Path(shutil.copytree(merged, copy)))
    start = rss_mb()
    settings = CustomerServiceSettings(device="cpu", customer_service_precision="fp32")
    bots, grown = [], {}
    for count in FULL_LOADED:
        while len(bots) < count:
            bots.append(load_runtime(VERTICAL, copies[len(bots)], settings))
            bots[-1].chat("s", MESSAGES[0])
        grown[count] = rss_mb() - start
    return grown


def memory(workdir: Path, artifact: Path, merged: Path, names: list[str]) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        shared = pool.apply(shared_memory, (workdir / "tenants", artifact, names))
    with context.Pool(1) as pool:
        full = pool.apply(full_memory, (merged,))
    encoder = load_runtime(VERTICAL, merged, CustomerServiceSettings(device="cpu")).encoder
    full_encoder = _tensor_mb(transformer_of(encoder).model.state_dict().values())
    slope = (full[FULL_LOADED[-1]] - full[FULL_LOADED[0]]) / (FULL_LOADED[-1] - FULL_LOADED[0])
    rows = {}
    for count in COUNTS:
        row = dict(shared["rows"][count])
        row["full_param_mb"] = count * full_encoder
        row["full_rss_mb"] = full.get(count, full[FULL_LOADED[0]] + slope * (count - 1))
        row["full_rss_extrapolated"] = count not in full
        row["param_ratio"] = row["full_param_mb"] / row["shared_param_mb"]
        row["rss_ratio"] = row["full_rss_mb"] / row["shared_rss_mb"]
        rows[str(count)] = row
    return {**shared, "rows": rows}


def p50_ms(client: TestClient, plan: list[str | None]) -> float:
    """Median ms of one-message requests, the tenant of each taken in turn from `plan`."""
    times = []
    for i, tenant in enumerate(plan):
        headers = {"X-Tenant": tenant} if tenant else {}
        body = {"session_id": f"bench-{i}", "message": MESSAGES[i % len(MESSAGES)]}
        started = time.perf_counter()
        response = client.post(URL, json=body, headers=headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return statistics.median(times) * 1000


def latency(args, artifact: Path, names: list[str]) -> dict:
    a, b = names[0], names[1]
    plans = {
        "served_bot": [None] * args.repeats,
        "same_tenant": [a] * args.repeats,
        "alternating_cached": [a, b] * (args.repeats // 2),
    }
    results: dict[str, list[float]] = {k: [] for k in [*plans, "alternating_cache_miss"]}
    tenants = args.workdir / "tenants"
    warm = CustomerServiceSettings(device="cpu", tenants_dir=tenants, tenant_cache_size=40)
    cold = CustomerServiceSettings(device="cpu", tenants_dir=tenants, tenant_cache_size=1)
    with (
        TestClient(create_app(VERTICAL, artifact, warm)) as hot,
        TestClient(create_app(VERTICAL, artifact, cold)) as miss,
    ):
        for client in (hot, miss):
            p50_ms(client, [None, a, b])  # warm-up
        for _ in range(args.rounds):
            for key, plan in plans.items():
                results[key].append(p50_ms(hot, plan))
            results["alternating_cache_miss"].append(p50_ms(miss, [a, b] * (args.repeats // 2)))
        evictions = miss.get("/v1/customer_service/tenants").json()["evictions"]
        batch = _batches(hot.app.state.runtime.tenants, names, args)
    out = {f"{k}_p50_ms": statistics.median(v) for k, v in results.items()}
    out["switch_cost_cached_ms"] = out["alternating_cached_p50_ms"] - out["same_tenant_p50_ms"]
    out["switch_cost_miss_ms"] = out["alternating_cache_miss_p50_ms"] - out["same_tenant_p50_ms"]
    out["cache_miss_evictions"] = evictions
    return {**out, **batch}


def _batches(pool, names, args) -> dict:
    """p50 ms of 32 messages of one tenant, of 32 tenants in one batch, and one call each."""
    for name in names[:32]:
        pool.bot(name)
    texts = [MESSAGES[i % len(MESSAGES)] for i in range(32)]
    one = [(names[0], t) for t in texts]
    mixed = list(zip(names[:32], texts, strict=True))
    times = {"batch32_one_tenant": [], "batch32_32_tenants": [], "batch32_one_call_each": []}
    for _ in range(args.rounds * 4):
        for key, items in (("batch32_one_tenant", one), ("batch32_32_tenants", mixed)):
            started = time.perf_counter()
            with torch.inference_mode():
                pool.encode_items(items)
            times[key].append(time.perf_counter() - started)
        started = time.perf_counter()
        with torch.inference_mode():
            for item in mixed:
                pool.encode_items([item])
        times["batch32_one_call_each"].append(time.perf_counter() - started)
    return {f"{k}_p50_ms": statistics.median(v) * 1000 for k, v in times.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = write_demo_data(args.workdir / "data")
    overrides = {
        "adapter": {"method": "lora"},
        "trainer": {"max_steps": args.steps, "progress": False},
    }
    artifact = train(load_config(CustomerServiceConfig, overrides=overrides), data, args.workdir)
    merged = args.workdir / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    compress_artifact(VERTICAL, artifact, merged, "lora-merge", data, measure=False)
    names = make_tenants(artifact, args.workdir / "tenants", max(COUNTS))
    mem = memory(args.workdir, artifact, merged, names)
    lat = latency(args, artifact, names)
    write_result(
        "multitenant_customer_service",
        dataset="customer_service demo bank (generated), MiniLM",
        protocol=(
            f"one LoRA bot (adapter.method=lora, {args.steps} steps) cloned into "
            f"{max(COUNTS)} tenants with redrawn adapters; memory in fresh processes (tensor "
            "bytes and RSS growth), full bots = lora-merged copies loaded from their own files "
            f"(N=1 and 10 loaded, 100 extrapolated); latency p50 of POST /chat over "
            f"{args.rounds} interleaved rounds of {args.repeats} requests, one torch thread"
        ),
        metrics={
            "adapter_mb": folder_size_mb(artifact / "adapter"),
            "artifact_mb": folder_size_mb(artifact),
            "merged_artifact_mb": folder_size_mb(merged),
            "memory": mem,
            "latency": lat,
        },
        seconds=time.perf_counter() - started,
        seed=0,
    )


if __name__ == "__main__":
    main()
