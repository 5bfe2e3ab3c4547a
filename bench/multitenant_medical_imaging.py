"""Many sites' imaging classifiers on one base: memory for 1, 10 and 100 tenants, switching latency.

Protocol (as `bench.multitenant_customer_service`, for medical_imaging): one adapter artifact on
EfficientNet-Lite0 (its packaged ImageNet weights; LoRA r=8 on the ungrouped convolutions, the
batch-norm layers inside the adapter: `adapter.method=lora`), trained by `verticals train` for
`--steps` steps on generated scans (`medical_imaging.synthetic`; the figures are about memory
and time, not accuracy), cloned into 100 tenant folders whose LoRA matrices are redrawn (so that
every tenant computes something else; the norm layers' copies are kept, a variance must stay
positive). Each tenant is a whole classifier: its head, temperature and threshold.

- Memory, side by side in fresh processes: `param_mb`, the bytes of the model tensors held (one
  base plus every loaded adapter, against one full network per tenant); `rss_mb`, the growth of
  resident memory (psutil) from before loading: the served artifact with N tenants answering,
  against N full classifiers (`load_runtime` of N copies of the lora-merged artifact). Full
  classifiers are loaded for N = 1 and 10 and extrapolated linearly to 100.
- Latency: p50 of one `POST /predict` (a PNG upload, `TestClient`), interleaved rounds of: the
  served artifact (no header), one tenant again and again, two tenants alternating (both
  cached), and two alternating with a cache of one (each request loads its tenant from disk).
  Then 32 images of one tenant against 32 images of 32 tenants in one engine batch
  (`MedicalImagingRuntime._batch`: one forward per tenant) and the 32 one call each.

    OMP_NUM_THREADS=1 python -m bench.multitenant_medical_imaging     # about 5 minutes
"""

from __future__ import annotations

import io
import multiprocessing
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file, save_file

from bench.common import bench_parser, write_result
from bench.multitenant import rss_mb
from medical_imaging import VERTICAL
from medical_imaging.config import MedicalImagingConfig, MedicalImagingSettings
from medical_imaging.synthetic import write_dataset
from medical_imaging.training import train
from shared.adapters import base_state_dict
from shared.compression import compress_artifact, folder_size_mb
from shared.config import load_config
from shared.registry import load_runtime
from shared.serving import create_app

URL = "/v1/medical_imaging/predict"
COUNTS = (1, 10, 100)
FULL_LOADED = (1, 10)


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/multitenant_imaging"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


def png(seed: int, size: int = 96) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_tenants(artifact: Path, folder: Path, count: int) -> list[str]:
    """`count` copies of the adapter artifact, each with its LoRA matrices redrawn."""
    shutil.rmtree(folder, ignore_errors=True)
    names = [f"t{i:03d}" for i in range(count)]
    for i, name in enumerate(names):
        shutil.copytree(artifact, folder / name)
        generator = torch.Generator().manual_seed(i)
        path = folder / name / "adapter" / "adapter_model.safetensors"
        tensors = load_file(path)
        for key, value in tensors.items():
            if "lora_" in key:
                noise = torch.randn(value.shape, generator=generator)
                tensors[key] = value + noise * (value.std() + 1e-3)
        save_file(tensors, str(path))
    return names


def _tensor_mb(tensors) -> float:
    return sum(v.numel() * v.element_size() for v in tensors) / 1e6


def shared_memory(tenants: Path, artifact: Path, names: list[str], image: bytes) -> dict:
    """The served artifact; 1, 10, then 100 tenants loaded and answering."""
    torch.set_num_threads(1)
    start = rss_mb()
    settings = MedicalImagingSettings(
        device="cpu", tenants_dir=tenants, tenant_cache_size=max(COUNTS)
    )
    runtime = load_runtime(VERTICAL, artifact, settings)
    pool = runtime.tenants
    base = _tensor_mb(base_state_dict(pool.model).values())
    rows, loaded = {}, 0
    for count in COUNTS:
        for name in names[loaded:count]:
            runtime._batch([(runtime.prepare(image, served=runtime.resolve(name)), name)])
        loaded = count
        assert len(pool.cache) == count
        rows[count] = {
            "shared_param_mb": base + pool.cache.adapter_bytes() / 1e6,
            "shared_rss_mb": rss_mb() - start,
        }
    return {"rows": rows, "base_param_mb": base}


def full_memory(merged: Path, image: bytes) -> dict[int, float]:
    """RSS growth with 1, then 10 full classifiers loaded and answering, each from its files."""
    torch.set_num_threads(1)
    copies = []
    for i in range(max(FULL_LOADED)):
        copy = merged.with_name(f"{merged.name}-{i}")
        shutil.rmtree(copy, ignore_errors=True)
        copies.append(Path(shutil.copytree(merged, copy)))
    start = rss_mb()
    runtimes, grown = [], {}
    for count in FULL_LOADED:
        while len(runtimes) < count:
            runtime = load_runtime(VERTICAL, copies[len(runtimes)], MedicalImagingSettings())
            runtime._batch([runtime.prepare(image)])
            runtimes.append(runtime)
        grown[count] = rss_mb() - start
    return grown


def memory(workdir: Path, artifact: Path, merged: Path, names: list[str], image: bytes) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        shared = pool.apply(shared_memory, (workdir / "tenants", artifact, names, image))
    with context.Pool(1) as pool:
        full = pool.apply(full_memory, (merged, image))
    network = load_runtime(VERTICAL, merged, MedicalImagingSettings(device="cpu")).task
    full_network = _tensor_mb(network.state_dict().values())
    slope = (full[FULL_LOADED[-1]] - full[FULL_LOADED[0]]) / (FULL_LOADED[-1] - FULL_LOADED[0])
    rows = {}
    for count in COUNTS:
        row = dict(shared["rows"][count])
        row["full_param_mb"] = count * full_network
        row["full_rss_mb"] = full.get(count, full[FULL_LOADED[0]] + slope * (count - 1))
        row["full_rss_extrapolated"] = count not in full
        row["param_ratio"] = row["full_param_mb"] / row["shared_param_mb"]
        row["rss_ratio"] = row["full_rss_mb"] / row["shared_rss_mb"]
        rows[str(count)] = row
    return {**shared, "rows": rows, "full_network_mb": full_network}


def p50_ms(client: TestClient, plan: list[str | None], image: bytes) -> float:
    """Median ms of one-image requests, the tenant of each taken in turn from `plan`."""
    times = []
    for tenant in plan:
        headers = {"X-Tenant": tenant} if tenant else {}
        started = time.perf_counter()
        response = client.post(URL, files={"file": ("s.png", image, "image/png")}, headers=headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return statistics.median(times) * 1000


def latency(args, artifact: Path, names: list[str], image: bytes) -> dict:
    a, b = names[0], names[1]
    plans = {
        "served": [None] * args.repeats,
        "same_tenant": [a] * args.repeats,
        "alternating_cached": [a, b] * (args.repeats // 2),
    }
    results: dict[str, list[float]] = {k: [] for k in [*plans, "alternating_cache_miss"]}
    tenants = args.workdir / "tenants"
    warm = MedicalImagingSettings(device="cpu", tenants_dir=tenants, tenant_cache_size=40)
    cold = MedicalImagingSettings(device="cpu", tenants_dir=tenants, tenant_cache_size=1)
    with (
        TestClient(create_app(VERTICAL, artifact, warm)) as hot,
        TestClient(create_app(VERTICAL, artifact, cold)) as miss,
    ):
        for client in (hot, miss):
            p50_ms(client, [None, a, b], image)  # warm-up
        for _ in range(args.rounds):
            for key, plan in plans.items():
                results[key].append(p50_ms(hot, plan, image))
            results["alternating_cache_miss"].append(
                p50_ms(miss, [a, b] * (args.repeats // 2), image)
            )
        evictions = miss.get("/v1/medical_imaging/tenants").json()["evictions"]
        batch = _batches(hot.app.state.runtime, names, args, image)
    out = {f"{k}_p50_ms": statistics.median(v) for k, v in results.items()}
    out["switch_cost_cached_ms"] = out["alternating_cached_p50_ms"] - out["same_tenant_p50_ms"]
    out["switch_cost_miss_ms"] = out["alternating_cache_miss_p50_ms"] - out["same_tenant_p50_ms"]
    out["cache_miss_evictions"] = evictions
    return {**out, **batch}


def _batches(runtime, names, args, image: bytes) -> dict:
    """p50 ms of 32 images of one tenant, of 32 tenants in one batch, and one call each."""
    pixels = runtime.prepare(image, served=runtime.resolve(names[0]))
    one = [(pixels, names[0])] * 32
    mixed = [(pixels, name) for name in names[:32]]
    runtime._batch(mixed)  # loads the 32
    times = {"batch32_one_tenant": [], "batch32_32_tenants": [], "batch32_one_call_each": []}
    for _ in range(args.rounds * 2):
        for key, items in (("batch32_one_tenant", one), ("batch32_32_tenants", mixed)):
            started = time.perf_counter()
            runtime._batch(items)
            times[key].append(time.perf_counter() - started)
        started = time.perf_counter()
        for item in mixed:
            runtime._batch([item])
        times["batch32_one_call_each"].append(time.perf_counter() - started)
    return {f"{k}_p50_ms": statistics.median(v) * 1000 for k, v in times.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = write_dataset(args.workdir / "data", n_patients=48, positive_rate=0.5)
    overrides = {
        "adapter": {"method": "lora"},
        "trainer": {"max_steps": args.steps, "epochs": 1, "progress": False},
    }
    cfg = load_config(MedicalImagingConfig, overrides=overrides)
    artifact = train(cfg, data, args.workdir / "run")
    merged = args.workdir / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    compress_artifact(VERTICAL, artifact, merged, "lora-merge", data, measure=False)
    names = make_tenants(artifact, args.workdir / "tenants", max(COUNTS))
    image = png(0)
    mem = memory(args.workdir, artifact, merged, names, image)
    lat = latency(args, artifact, names, image)
    write_result(
        "multitenant_medical_imaging",
        dataset="generated scans (medical_imaging.synthetic, 96 px), EfficientNet-Lite0",
        protocol=(
            f"one LoRA classifier (adapter.method=lora, {args.steps} steps) cloned into "
            f"{max(COUNTS)} tenants with redrawn LoRA matrices; memory in fresh processes "
            "(tensor bytes and RSS growth), full classifiers = lora-merged copies loaded from "
            "their own files (N=1 and 10 loaded, 100 extrapolated); latency p50 of POST "
            f"/predict over {args.rounds} interleaved rounds of {args.repeats} requests, one "
            "torch thread"
        ),
        metrics={
            "adapter_mb": folder_size_mb(artifact / "adapter"),
            "artifact_mb": folder_size_mb(artifact),
            "merged_artifact_mb": folder_size_mb(merged),
            "image_size": load_runtime(VERTICAL, artifact, MedicalImagingSettings()).cfg.image_size,
            "memory": mem,
            "latency": lat,
        },
        seconds=time.perf_counter() - started,
        seed=0,
    )


if __name__ == "__main__":
    main()
