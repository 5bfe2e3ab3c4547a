"""One fine-tuning loop for every vertical, readable top to bottom.

A vertical supplies a *task*: an `nn.Module` whose `forward(batch)` returns a dict with a scalar
`loss`. If the task has a `backbone` attribute, it can be frozen for the first epochs and trained
with its own learning rate. An :class:`~shared.training.evaluator.Evaluator` scores each epoch
and names the metric that picks the best one; callbacks run at the points listed in
:class:`~shared.training.state.Callback`. AdamW, warmup and decay, accumulation, clipping, mixed
precision and early stopping live here; checkpoints in `checkpoint`, logs and plots in `tracking`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from shared import distributed
from shared.config import TrainerConfig
from shared.devices import autocast, autocast_dtype, resolve_device, seed_everything
from shared.errors import VerticalsError
from shared.training import checkpoint as ckpt
from shared.training.evaluator import Evaluator, Monitor, resolve_monitor
from shared.training.optim import build_optimizer, set_backbone_trainable, train_mode
from shared.training.state import TrainResult, TrainState, call_hooks
from shared.training.tracking import RunLog, plot_history, short

log = logging.getLogger(__name__)


@dataclass
class _Run:
    """What every epoch of one run uses (built once by `fit`)."""

    model: nn.Module  # the task, wrapped for data-parallel training when there are several ranks
    loader: DataLoader
    sampler: Sampler | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    cfg: TrainerConfig
    device: torch.device
    amp_dtype: torch.dtype | None
    runlog: RunLog
    monitor: Monitor


def fit(
    task: nn.Module,
    train_data: Sequence[Any],
    collate_fn: Callable[[list[Any]], Any],
    cfg: TrainerConfig,
    out_dir: str | Path,
    *,
    evaluator: Evaluator | None = None,
    callbacks: Sequence[Any] = (),
    sampler: Sampler | None = None,
) -> TrainResult:
    """Trains `task` on `train_data` and leaves the best weights (by the monitor) loaded.

    The monitor is `cfg.monitor` when set, else the evaluator's primary metric, else (no
    evaluator) the training loss; `TrainResult.monitor` records which. Writes under `out_dir`:
    `checkpoint.pt` after every epoch, `best.pt`, `history.jsonl`, `training_curve.png`, and
    TensorBoard logs when asked. With `cfg.resume` it continues from `checkpoint.pt` exactly where
    the last finished epoch left off: each epoch's data order depends only on the seed and epoch.

    Args:
        task: Module whose `forward(batch)` returns a dict with a scalar `"loss"`.
        train_data: Indexable examples; `collate_fn` turns a list of them into a batch.
        collate_fn: Builds a batch (tensors may stay on CPU; they are moved here).
        cfg: Loop settings.
        out_dir: Folder for checkpoints and logs.
        evaluator: Scores the task after each epoch (see `Evaluator`).
        callbacks: Objects with any of the hooks of `Callback`.
        sampler: Optional sampler (e.g. `WeightedRandomSampler` for class imbalance) instead of
            plain shuffling; a sampler with a `generator` attribute is reseeded every epoch.

    Raises:
        VerticalsError: when the monitored metric is missing from an epoch's metrics.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    run = _build_run(task, train_data, collate_fn, cfg, out_dir, evaluator, sampler)
    state = _start_state(run, task, out_dir)
    best_state = ckpt.load_best(out_dir) if state.result.best is not None else None
    try:
        call_hooks(list(callbacks), "on_train_start", state)
        for epoch in range(state.epoch, cfg.epochs):
            if state.result.steps >= state.total_steps or state.result.stopped_early:
                break
            state.epoch = epoch
            row = _train_epoch(run, state)
            call_hooks(list(callbacks), "on_epoch_end", state)
            if evaluator is not None:  # every rank evaluates: every rank takes the same decisions
                row.update(_evaluate(evaluator, task))
            best_state = _record_epoch(run, state, row, out_dir) or best_state
            log.info("epoch %d: %s", epoch + 1, {k: short(v) for k, v in row.items()})
        if best_state is not None:
            task.load_state_dict(best_state)
        call_hooks(list(callbacks), "on_train_end", state)
    finally:
        run.runlog.close()
    if distributed.is_main_process():
        plot_history(state.result.history, out_dir / "training_curve.png")
    return state.result


def _build_run(task, train_data, collate_fn, cfg, out_dir, evaluator, sampler) -> _Run:
    device = distributed.setup(resolve_device(cfg.device))
    task.to(device)
    if sampler is not None and distributed.world_size() > 1:
        raise ValueError("a custom sampler cannot be combined with data-parallel training")
    if distributed.world_size() > 1:
        sampler = DistributedSampler(train_data, shuffle=True, seed=cfg.seed)
    loader = DataLoader(
        train_data,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),
    )
    optimizer, scheduler = build_optimizer(task, cfg, max(1, _total_steps(cfg, len(loader))))
    amp_dtype = autocast_dtype(device, cfg.precision)
    return _Run(
        model=distributed.wrap(task, device, find_unused=cfg.freeze_backbone_epochs > 0),
        loader=loader,
        sampler=sampler,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        cfg=cfg,
        device=device,
        amp_dtype=amp_dtype,
        runlog=RunLog(out_dir, cfg.tensorboard, enabled=distributed.is_main_process()),
        monitor=resolve_monitor(cfg.monitor, cfg.monitor_mode, evaluator),
    )


def _total_steps(cfg: TrainerConfig, batches_per_epoch: int) -> int:
    total = max(1, math.ceil(batches_per_epoch / cfg.grad_accum)) * cfg.epochs
    return total if cfg.max_steps is None else min(total, cfg.max_steps)


def _start_state(run: _Run, task: nn.Module, out_dir: Path) -> TrainState:
    """A fresh state, or the state of the last finished epoch when resuming."""
    result, epoch = TrainResult(), 0
    restored = (
        ckpt.load_checkpoint(out_dir, task, run.optimizer, run.scheduler, run.scaler)
        if run.cfg.resume
        else None
    )
    if restored is not None:
        epoch, result = restored
        _check_same_monitor(result, run.monitor, out_dir)
        log.info("resumed from %s at epoch %d (step %d)", out_dir, epoch, result.steps)
    result.monitor, result.monitor_mode = run.monitor.key, run.monitor.mode
    run.runlog.start(result.history)
    bad = 0 if result.best_epoch is None else len(result.history) - result.best_epoch
    total = _total_steps(run.cfg, len(run.loader))
    return TrainState(task=task, epoch=epoch, total_steps=total, result=result, bad_epochs=bad)


def _check_same_monitor(result: TrainResult, monitor: Monitor, out_dir: Path) -> None:
    """A resumed run compares epochs on the metric its checkpoint compared them on."""
    saved = (result.monitor, result.monitor_mode)
    if result.best is not None and saved != (monitor.key, monitor.mode):
        raise VerticalsError(
            f"cannot resume {out_dir}: its checkpoint kept epochs by {saved[0]} ({saved[1]}), this "
            f"run monitors {monitor.key} ({monitor.mode}); resume with the same validation data "
            "and trainer.monitor, or train into a new --out"
        )


def _train_epoch(run: _Run, state: TrainState) -> dict[str, float]:
    """One pass over the data; returns the epoch's row (loss, throughput, learning rate)."""
    from tqdm.auto import tqdm

    cfg, result = run.cfg, state.result
    set_backbone_trainable(state.task, state.epoch >= cfg.freeze_backbone_epochs)
    _reseed(run, cfg.seed, state.epoch)
    train_mode(run.model)
    total_loss, seen, started = 0.0, 0, time.perf_counter()
    bar = tqdm(
        run.loader,
        desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
        # a step budget (`max_steps`) ends the epoch early: the bar shows the batches it will run
        total=min(len(run.loader), (state.total_steps - result.steps) * cfg.grad_accum),
        disable=not cfg.progress,
        leave=False,
    )
    run.optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(bar):
        batch = move_to(batch, run.device)
        with autocast(run.device, run.amp_dtype):
            loss = run.model(batch)["loss"]
        run.scaler.scale(loss / cfg.grad_accum).backward()
        size = batch_size(batch)
        total_loss, seen = total_loss + float(loss.detach()) * size, seen + size
        if (i + 1) % cfg.grad_accum == 0 or i + 1 == len(run.loader):
            _optimizer_step(run)
            result.steps += 1
            run.runlog.step(float(loss.detach()), result.steps)
            if result.steps >= state.total_steps:
                break
        rate = seen / max(1e-9, time.perf_counter() - started)
        bar.set_postfix(loss=f"{total_loss / max(1, seen):.4f}", samples_per_s=f"{rate:.1f}")
    rate = seen / max(1e-9, time.perf_counter() - started)
    return {
        "epoch": state.epoch + 1,
        "step": result.steps,
        "train_loss": distributed.mean(total_loss / max(1, seen), run.device),
        "samples_per_s": rate * distributed.world_size(),
        "lr": run.scheduler.get_last_lr()[0],
    }


def _reseed(run: _Run, seed: int, epoch: int) -> None:
    """Makes the epoch's data order depend only on the seed and the epoch (exact resume)."""
    run.loader.generator.manual_seed(seed * 10_007 + epoch)
    if getattr(run.sampler, "generator", None) is not None:
        run.sampler.generator.manual_seed(seed * 10_007 + epoch)
    if hasattr(run.sampler, "set_epoch"):
        run.sampler.set_epoch(epoch)


def _optimizer_step(run: _Run) -> None:
    if run.cfg.max_grad_norm is not None:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.max_grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)


def _evaluate(evaluator: Evaluator, task: nn.Module) -> dict[str, float]:
    task.eval()
    with torch.inference_mode():
        return {f"val_{k}": float(v) for k, v in evaluator(task).items()}


def _record_epoch(run: _Run, state: TrainState, row: dict[str, float], out_dir: Path):
    """Appends the row, tracks the best epoch and early stopping, and checkpoints.

    Returns the best weights when this epoch improved on the monitor, else None.
    """
    result, main = state.result, distributed.is_main_process()
    value = run.monitor.value(row)
    result.history.append(row)
    best_state = None
    if run.monitor.improved(value, result.best):
        result.best, result.best_epoch, state.bad_epochs = value, state.epoch + 1, 0
        best_state = ckpt.cpu_copy(state.task)
        if main:
            ckpt.save_best(out_dir, best_state)
    else:
        state.bad_epochs += 1
        patience = run.cfg.early_stopping_patience
        result.stopped_early = patience is not None and state.bad_epochs >= patience
    if main:
        run.runlog.epoch(row)
        ckpt.save_checkpoint(
            out_dir, state.epoch + 1, state.task, run.optimizer, run.scheduler, run.scaler, result
        )
    distributed.barrier()
    return best_state


def move_to(batch: Any, device: torch.device) -> Any:
    """Moves tensors in nested dicts, lists and tuples to `device` (non-blocking from pinned memory)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def batch_size(batch: Any) -> int:
    """The number of examples in a batch (the first tensor's leading dimension)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict) and batch:
        return batch_size(next(iter(batch.values())))
    if isinstance(batch, list | tuple) and batch:
        nested = isinstance(batch[0], dict | list | tuple | torch.Tensor)
        return batch_size(batch[0]) if nested else len(batch)
    return 1
