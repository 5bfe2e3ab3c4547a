"""Many customers on one base: memory for 1, 10 and 100 tenants, and the latency of switching.

Protocol: one finance_sentiment adapter artifact on MiniLM (LoRA r=8 on every Linear layer of the
body, the default `target_modules`; trained by `verticals train` with `adapter.method=lora` for
`--steps` steps on the project's generated headlines: the figures here are about memory and
time, not accuracy), cloned into 100 tenant folders whose adapter and heads are redrawn (so that every tenant computes something else).

- Memory, two measures side by side: `param_mb`, the bytes of the tensors held (one base plus
  every loaded adapter and heads, against one full model per tenant: N x (base + heads)); and
  `rss_mb`, the growth of resident memory (psutil) of a fresh process from before it loads:
  the runtime of the adapter artifact with N tenants loaded (`TenantPool`, the service's
  path), against N full-model runtimes (`load_runtime` of N copies of the lora-merged artifact,
  each from its own files). Full models are loaded for N = 1 and 10 and extrapolated linearly
  to 100 (about 9 GB: not loaded here; `full_rss_extrapolated`).
- Latency: p50 of one text through the HTTP API (`TestClient`, `POST /score`), interleaved
  rounds of: the served artifact alone (no header), one tenant again and again, two tenants
  alternating (both cached), and two tenants alternating with a cache of one adapter (each
  request loads its adapter from disk: the cost of a miss). Then 32 texts of one tenant
  against 32 texts of 32 tenants in one call (`tenants.score_mixed`: one forward, per-row
  adapters) and against the same 32 scored one call each (tenants that could not share).

    OMP_NUM_THREADS=1 python -m bench.multitenant          # about 4 minutes on one thread
"""

from __future__ import annotations

import gc
import multiprocessing
import shutil
import statistics
import time
from pathlib import Path

import psutil
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from bench.common import bench_parser, write_result
from finance_sentiment import VERTICAL
from finance_sentiment.config import FinanceConfig, FinanceTrainerConfig
from finance_sentiment.generate import make_labelled
from finance_sentiment.settings import FinanceSettings
from finance_sentiment.tenants import score_mixed
from finance_sentiment.training import train
from shared.adapters import AdapterConfig, base_state_dict
from shared.compression import compress_artifact, folder_size_mb
from shared.registry import build_settings, load_runtime
from shared.serving import create_app

URL = "/v1/finance_sentiment/score"
COUNTS = (1, 10, 100)
FULL_LOADED = (1, 10)


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/multitenant"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 1e6


def tensor_mb(module: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in module.state_dict().values()) / 1e6


def make_tenants(artifact: Path, folder: Path, count: int) -> list[str]:
    """`count` copies of the adapter artifact, each with its adapter and heads redrawn."""
    shutil.rmtree(folder, ignore_errors=True)
    names = [f"t{i:03d}" for i in range(count)]
    for i, name in enumerate(names):
        shutil.copytree(artifact, folder / name)
        generator = torch.Generator().manual_seed(i)
        for file in ("adapter_model.safetensors", "heads.safetensors"):
            path = folder / name / "adapter" / file
            tensors = load_file(path)
            save_file(
                {
                    k: v + torch.randn(v.shape, generator=generator) * v.std()
                    for k, v in tensors.items()
                },
                str(path),
            )
    return names


def p50_ms(client: TestClient, plan: list[str | None], text: str) -> float:
    """Median ms of one-text requests, the tenant of each taken in turn from `plan`."""
    times = []
    for tenant in plan:
        headers = {"X-Tenant": tenant} if tenant else {}
        started = time.perf_counter()
        response = client.post(URL, json={"texts": [text]}, headers=headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return statistics.median(times) * 1000


def memory(args, artifact: Path, merged: Path, names: list[str], texts: list[str]) -> dict:
    """Parameter bytes and RSS growth for N tenants on one base and for N full models, each
    side measured in a fresh process (freed memory is not handed back to the system)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        shared = pool.apply(shared_memory, (args.workdir, artifact, names, texts))
    with context.Pool(1) as pool:
        full = pool.apply(full_memory, (merged, texts))
    rows = {}
    slope = (full[FULL_LOADED[-1]] - full[FULL_LOADED[0]]) / (FULL_LOADED[-1] - FULL_LOADED[0])
    for count in COUNTS:
        row = dict(shared["rows"][count])
        row["full_param_mb"] = count * (shared["base_param_mb"] + shared["heads_param_mb"])
        row["full_rss_mb"] = full.get(count, full[FULL_LOADED[0]] + slope * (count - 1))
        row["full_rss_extrapolated"] = count not in full
        row["param_ratio"] = row["full_param_mb"] / row["shared_param_mb"]
        row["rss_ratio"] = row["full_rss_mb"] / row["shared_rss_mb"]
        rows[str(count)] = row
    return {**shared, "rows": rows}


def shared_memory(workdir: Path, artifact: Path, names: list[str], texts: list[str]) -> dict:
    """One runtime on the adapter artifact; 1, 10, then 100 tenants loaded and scoring."""
    torch.set_num_threads(1)
    start = rss_mb()
    settings = build_settings(
        VERTICAL, device="cpu", tenants_dir=workdir / "tenants", tenant_cache_size=max(COUNTS)
    )
    runtime = load_runtime(VERTICAL, artifact, settings)
    pool = runtime.tenants
    base = sum(v.numel() * v.element_size() for v in base_state_dict(pool.body).values()) / 1e6
    heads = tensor_mb(runtime.scorer.task.head)
    rows: dict[int, dict] = {}
    loaded = 0
    for count in COUNTS:
        pool.score([(texts[0], name) for name in names[loaded:count]])
        loaded = count
        assert len(pool.cache) == count
        rows[count] = {
            "shared_param_mb": base + pool.cache.adapter_bytes() / 1e6 + (count + 1) * heads,
            "shared_rss_mb": rss_mb() - start,
        }
    return {"rows": rows, "base_param_mb": base, "heads_param_mb": heads}


def full_memory(merged: Path, texts: list[str]) -> dict[int, float]:
    """RSS growth with 1, then 10 full models loaded and predicting: copies of the merged
    artifact, each from its own files (as different customers' models would be)."""
    torch.set_num_threads(1)
    copies = []
    for i in range(max(FULL_LOADED)):
        copy = merged.with_name(f"{merged.name}-{i}")
        shutil.rmtree(copy, ignore_errors=True)
        copies.append(Path(shutil.copytree(merged, copy)))
    start = rss_mb()
    settings = build_settings(VERTICAL, device="cpu")
    runtimes, grown = [], {}
    for count in FULL_LOADED:
        while len(runtimes) < count:
            runtimes.append(load_runtime(VERTICAL, copies[len(runtimes)], settings))
            runtimes[-1].predict([{"text": texts[0]}])
        grown[count] = rss_mb() - start
    return grown


def latency(args, artifact: Path, names: list[str], texts: list[str]) -> dict:
    """p50 of same-tenant, alternating and cache-miss requests, and mixed batches."""
    text, a, b = texts[0], names[0], names[1]
    plans = {
        "served_artifact": [None] * args.repeats,
        "same_tenant": [a] * args.repeats,
        "alternating_cached": [a, b] * (args.repeats // 2),
    }
    results: dict[str, list[float]] = {k: [] for k in [*plans, "alternating_cache_miss"]}
    tenants = args.workdir / "tenants"
    warm = FinanceSettings(
        device="cpu", tenants_dir=tenants, tenant_cache_size=8, finance_db=args.workdir / "m1.db"
    )
    cold = FinanceSettings(
        device="cpu", tenants_dir=tenants, tenant_cache_size=1, finance_db=args.workdir / "m2.db"
    )
    with (
        TestClient(create_app(VERTICAL, artifact, warm)) as hot,
        TestClient(create_app(VERTICAL, artifact, cold)) as miss,
    ):
        for client in (hot, miss):
            p50_ms(client, [None, a, b], text)  # warm-up
        for _ in range(args.rounds):
            for key, plan in plans.items():
                results[key].append(p50_ms(hot, plan, text))
            results["alternating_cache_miss"].append(
                p50_ms(miss, [a, b] * (args.repeats // 2), text)
            )
        evictions = miss.get("/v1/finance_sentiment/tenants").json()["evictions"]
        batch = _batches(hot.app.state.runtime.tenants, names, texts, args)
    out = {f"{k}_p50_ms": statistics.median(v) for k, v in results.items()}
    out["switch_cost_cached_ms"] = out["alternating_cached_p50_ms"] - out["same_tenant_p50_ms"]
    out["switch_cost_miss_ms"] = out["alternating_cache_miss_p50_ms"] - out["same_tenant_p50_ms"]
    out["cache_miss_evictions"] = evictions
    return {**out, **batch}


def _batches(pool, names, texts, args) -> dict:
    """p50 ms of 32 texts of one tenant, of 32 tenants in one forward, and of 32 tenants one
    forward each."""
    pool.cache.capacity = 32
    tenants = [pool.resolve(name) for name in names[:32]]
    one = [(tenants[0], t) for t in texts[:32]]
    mixed = [(tenant, t) for tenant, t in zip(tenants, texts[:32], strict=True)]
    times = {"batch32_one_tenant": [], "batch32_32_tenants": [], "batch32_one_call_each": []}
    for _ in range(args.rounds * 4):
        for key, entries in (("batch32_one_tenant", one), ("batch32_32_tenants", mixed)):
            started = time.perf_counter()
            score_mixed(pool.main.scorer, entries)
            times[key].append(time.perf_counter() - started)
        started = time.perf_counter()  # what the 32 tenants cost if they could not share
        for entry in mixed:
            score_mixed(pool.main.scorer, [entry])
        times["batch32_one_call_each"].append(time.perf_counter() - started)
    return {f"{k}_p50_ms": statistics.median(v) * 1000 for k, v in times.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / "generated.csv"
    make_labelled(n_per_template=3, seed=0).drop(columns=["topic"]).to_csv(data, index=False)
    cfg = FinanceConfig(
        model="minilm",
        topics={},
        adapter=AdapterConfig(),
        trainer=FinanceTrainerConfig(max_steps=args.steps, epochs=1, progress=False),
    )
    shutil.rmtree(args.workdir / "model", ignore_errors=True)
    artifact = train(cfg, data, args.workdir / "model")
    merged = args.workdir / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    compress_artifact(VERTICAL, artifact, merged, "lora-merge", data, measure=False)
    names = make_tenants(artifact, args.workdir / "tenants", max(COUNTS))
    texts = make_labelled(n_per_template=1, seed=1)["text"].tolist()[:64]
    mem = memory(args, artifact, merged, names, texts)
    lat = latency(args, artifact, names, texts)
    sizes = {
        "adapter_artifact_mb": folder_size_mb(artifact),
        "full_artifact_mb": folder_size_mb(merged),
    }
    for count, r in mem["rows"].items():
        print(
            f"{count:>4} tenants: params {r['shared_param_mb']:.1f} MB vs {r['full_param_mb']:.1f} MB; RSS {r['shared_rss_mb']:.0f} MB vs {r['full_rss_mb']:.0f} MB"
        )
    print({k: round(v, 2) for k, v in lat.items()})
    write_result(
        "multitenant",
        dataset="finance_sentiment generated headlines (finance_sentiment.generate): adapters trained "
        f"{args.steps} steps, then cloned into {max(COUNTS)} tenants with redrawn adapters and heads",
        protocol=__doc__.split("Protocol: ", 1)[1].split("\n\n    OMP")[0].replace("\n", " "),
        metrics={"memory": mem["rows"], "latency": lat, **sizes},
        baselines={
            "one_full_model_per_tenant": {
                k: {"param_mb": r["full_param_mb"], "rss_mb": r["full_rss_mb"]}
                for k, r in mem["rows"].items()
            }
        },
        anchors={"base_param_mb": mem["base_param_mb"], "heads_param_mb": mem["heads_param_mb"]},
        seconds=time.perf_counter() - started,
        seed=0,
        notes=f"MiniLM body, LoRA r=8 alpha=16 on every Linear layer (all-linear); cache of {max(COUNTS)} for memory; 1 torch thread; full-model RSS measured for N in {FULL_LOADED}, linear beyond",
    )


if __name__ == "__main__":
    main()
