"""Data-parallel training across processes, GPUs and machines, launched with `torchrun`.

`torchrun --nnodes 2 --nproc-per-node 8 ... -m shared.cli train ...` sets `WORLD_SIZE`, `RANK` and
`LOCAL_RANK`; the shared loop then wraps the task in DistributedDataParallel, shards each epoch
with a DistributedSampler, and lets only rank 0 write checkpoints, logs and artifacts. With one
process nothing here does anything.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return (
        dist.get_rank()
        if dist.is_available() and dist.is_initialized()
        else int(os.environ.get("RANK", "0"))
    )


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes files."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Joins the process group when launched by torchrun; returns this process's device.

    NCCL on CUDA, Gloo on CPU. Each process takes the GPU of its `LOCAL_RANK`.
    """
    if world_size() <= 1 or not dist.is_available():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(task: torch.nn.Module, device: torch.device, find_unused: bool) -> torch.nn.Module:
    """Wraps `task` in DistributedDataParallel when running in a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return task
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(task, device_ids=ids, find_unused_parameters=find_unused)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def mean(value: float, device: torch.device) -> float:
    """The mean of a per-process number over all processes (itself with one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()
