"""Checkpoint I/O: the full loop state after every epoch, and the best weights so far.

`checkpoint.pt` holds model, optimizer, scheduler, scaler and RNG states, so a resumed run
continues exactly; `best.pt` holds the weights of the best epoch. Both are written to a
temporary file and renamed, and read with `weights_only=True` (nothing is unpickled).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from shared.training.state import TrainResult

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # a killed run never leaves half a file


def save_checkpoint(
    out_dir: Path, epoch: int, task: nn.Module, optimizer, scheduler, scaler, result: TrainResult
) -> None:
    """Writes `out_dir/checkpoint.pt` after `epoch` (1-based count of finished epochs)."""
    state = {
        "epoch": epoch,
        "model": task.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "result": json.dumps(asdict(result)),
    }
    _atomic_save(state, out_dir / CHECKPOINT)


def load_checkpoint(
    out_dir: Path, task: nn.Module, optimizer, scheduler, scaler
) -> tuple[int, TrainResult] | None:
    """Restores the loop state from `out_dir/checkpoint.pt`; None when there is none."""
    path = out_dir / CHECKPOINT
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    task.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return int(state["epoch"]), TrainResult(**json.loads(state["result"]))


def cpu_copy(task: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the task's weights (the best epoch's, kept in memory)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in task.state_dict().items()}


def save_best(out_dir: Path, state: dict[str, torch.Tensor]) -> None:
    _atomic_save(state, out_dir / BEST)


def load_best(out_dir: Path) -> dict[str, torch.Tensor] | None:
    path = out_dir / BEST
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def check_out_dir(out_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Refuses to train into a folder an earlier run left, unless told to resume or overwrite.

    Raises:
        VerticalsError: when `out_dir` holds files and neither flag is set.
    """
    from shared.errors import VerticalsError

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise VerticalsError(f"--out {out_dir} is a file, not a folder")
    if resume or overwrite or not out_dir.exists() or not any(out_dir.iterdir()):
        return
    raise VerticalsError(
        f"--out {out_dir} is not empty (an earlier run?); pass --overwrite to replace it, "
        "--resume to continue its last checkpoint, or another --out"
    )


def prune_checkpoints(out_dir: str | Path, *, keep_last: bool = False) -> int:
    """Deletes the loop's checkpoint files under `out_dir` once its artifact is written.

    `best.pt` always goes (the artifact holds those weights); `checkpoint.pt` (the optimizer
    state, for `--resume`) stays when `keep_last`. Returns the bytes freed.
    """
    names = {BEST} | (set() if keep_last else {CHECKPOINT})
    freed = 0
    for path in Path(out_dir).rglob("*.pt"):
        if path.name in names and "artifact" not in path.relative_to(out_dir).parts:
            freed += path.stat().st_size
            path.unlink()
    return freed
