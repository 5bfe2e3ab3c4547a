"""One fine-tuning loop for every vertical, readable top to bottom.

A vertical supplies a *task*: an `nn.Module` whose `forward(batch)` returns a dict with a scalar
`loss`. If the task has a `backbone` attribute, it can be frozen for the first epochs and trained
with its own learning rate. Everything else (AdamW, warmup and decay, accumulation, clipping,
mixed precision, early stopping, checkpoints and exact resume) lives here.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from shared import distributed
from shared.config import TrainerConfig
from shared.devices import autocast, autocast_dtype, resolve_device, seed_everything

log = logging.getLogger(__name__)

Evaluate = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainResult:
    """What `fit` hands back: the per-epoch history and the best monitored value."""

    history: list[dict[str, float]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    steps: int = 0
    stopped_early: bool = False


def _param_groups(task: nn.Module, cfg: TrainerConfig) -> list[dict[str, Any]]:
    """AdamW groups: backbone vs head learning rates, no weight decay on biases and norms."""
    backbone = getattr(task, "backbone", None)
    backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in task.named_parameters():
        is_backbone = id(param) in backbone_ids
        no_decay = param.ndim < 2 or "norm" in name.lower()
        groups.setdefault((is_backbone, no_decay), []).append(param)
    out = []
    for (is_backbone, no_decay), params in groups.items():
        lr = (cfg.backbone_lr or cfg.lr) if is_backbone else cfg.lr
        out.append(
            {"params": params, "lr": lr, "weight_decay": 0.0 if no_decay else cfg.weight_decay}
        )
    return out


def _set_backbone_trainable(task: nn.Module, trainable: bool) -> None:
    backbone = getattr(task, "backbone", None)
    if backbone is not None:
        for p in backbone.parameters():
            p.requires_grad_(trainable)


def move_to(batch: Any, device: torch.device) -> Any:
    """Moves tensors in nested dicts, lists and tuples to `device` (non-blocking from pinned memory)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainerConfig, total_steps: int):
    from transformers import get_scheduler

    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[
        cfg.schedule
    ]
    warmup = int(math.ceil(cfg.warmup_ratio * total_steps))
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def _improved(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


def fit(
    task: nn.Module,
    train_data: Sequence[Any],
    collate_fn: Callable[[list[Any]], Any],
    cfg: TrainerConfig,
    out_dir: str | Path,
    *,
    evaluate: Evaluate | None = None,
    resume: bool = False,
    sampler: Sampler | None = None,
) -> TrainResult:
    """Trains `task` on `train_data` and leaves the best weights (by `cfg.monitor`) loaded.

    Writes under `out_dir`: `checkpoint.pt` after every epoch (model, optimizer, scheduler,
    scaler and RNG states), `history.jsonl`, `training_curve.png`, and TensorBoard logs when
    asked. With `resume=True` it continues from `checkpoint.pt` exactly where the last finished
    epoch left off: the data order of each epoch depends only on the seed and the epoch.

    Args:
        task: Module whose `forward(batch)` returns a dict with a scalar `"loss"`.
        train_data: Indexable examples; `collate_fn` turns a list of them into a batch.
        collate_fn: Builds a batch (tensors may stay on CPU; they are moved here).
        cfg: Loop settings.
        out_dir: Folder for checkpoints and logs.
        evaluate: Called after each epoch with the task in eval mode; returns validation metrics.
            Without it, the monitor falls back to the epoch's training loss.
        resume: Continue from `out_dir/checkpoint.pt` if it exists.
        sampler: Optional sampler (e.g. `WeightedRandomSampler` for class imbalance) instead of
            plain shuffling; a sampler with a `generator` attribute is reseeded every epoch.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = distributed.setup(resolve_device(cfg.device))
    main = distributed.is_main_process()
    amp_dtype = autocast_dtype(device, cfg.precision)
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
        drop_last=False,
        generator=torch.Generator(),
    )
    steps_per_epoch = max(1, math.ceil(len(loader) / cfg.grad_accum))
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = torch.optim.AdamW(_param_groups(task, cfg))
    scheduler = _scheduler(optimizer, cfg, max(1, total_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    result, start_epoch = TrainResult(), 0
    ckpt_path = out_dir / "checkpoint.pt"
    if (resume or cfg.resume) and ckpt_path.exists():
        start_epoch, result = _load_checkpoint(ckpt_path, task, optimizer, scheduler, scaler)
        log.info("resumed from %s at epoch %d (step %d)", ckpt_path, start_epoch, result.steps)
    if main:  # history.jsonl holds this run's epochs only (the resumed ones, none when fresh)
        (out_dir / "history.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in result.history), encoding="utf-8"
        )
    model = distributed.wrap(task, device, find_unused=cfg.freeze_backbone_epochs > 0)
    writer = (
        _tensorboard(out_dir, required=bool(cfg.tensorboard))
        if cfg.tensorboard is not False and main
        else None
    )
    best_state = _load_best(out_dir) if result.best is not None else None
    bad_epochs = _epochs_since_best(result)

    for epoch in range(start_epoch, cfg.epochs):
        if result.steps >= total_steps or result.stopped_early:
            break
        _set_backbone_trainable(task, epoch >= cfg.freeze_backbone_epochs)
        loader.generator.manual_seed(cfg.seed * 10_007 + epoch)
        if getattr(sampler, "generator", None) is not None:
            sampler.generator.manual_seed(cfg.seed * 10_007 + epoch)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        train_loss, samples_per_s = _train_epoch(
            model,
            loader,
            optimizer,
            scheduler,
            scaler,
            cfg,
            device,
            amp_dtype,
            result,
            total_steps,
            epoch,
            writer,
        )
        train_loss = distributed.mean(train_loss, device)  # the same monitor value on every rank
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "step": result.steps,
            "train_loss": train_loss,
            "samples_per_s": samples_per_s * distributed.world_size(),
            "lr": scheduler.get_last_lr()[0],
        }
        if evaluate is not None:  # every rank evaluates, so every rank takes the same decisions
            task.eval()
            with torch.inference_mode():
                row.update({f"val_{k}": float(v) for k, v in evaluate(task).items()})
        value = row.get(f"val_{cfg.monitor}", row.get(cfg.monitor, train_loss))
        result.history.append(row)
        if _improved(value, result.best, cfg.monitor_mode):
            result.best, result.best_epoch, bad_epochs = value, epoch + 1, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in task.state_dict().items()}
            if main:
                torch.save(best_state, out_dir / "best.pt")
        else:
            bad_epochs += 1
            if (
                cfg.early_stopping_patience is not None
                and bad_epochs >= cfg.early_stopping_patience
            ):
                result.stopped_early = True
        if main:
            _log_epoch(out_dir, row, writer)
            _save_checkpoint(ckpt_path, epoch + 1, task, optimizer, scheduler, scaler, result)
        distributed.barrier()
        log.info("epoch %d: %s", epoch + 1, {k: _short(v) for k, v in row.items()})

    if best_state is not None:
        task.load_state_dict(best_state)
    if writer is not None:
        writer.close()
    if main:
        plot_history(result.history, out_dir / "training_curve.png")
    return result


def _train_epoch(
    model,
    loader,
    optimizer,
    scheduler,
    scaler,
    cfg,
    device,
    amp_dtype,
    result,
    total_steps,
    epoch,
    writer,
) -> tuple[float, float]:
    from tqdm.auto import tqdm

    model.train()
    backbone = getattr(getattr(model, "module", model), "backbone", None)
    if backbone is not None and not any(p.requires_grad for p in backbone.parameters()):
        backbone.eval()  # a frozen backbone keeps its BatchNorm statistics and skips dropout
    total_loss, seen, started = 0.0, 0, time.perf_counter()
    bar = tqdm(
        loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, leave=False
    )
    optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(bar):
        batch = move_to(batch, device)
        with autocast(device, amp_dtype):
            loss = model(batch)["loss"]
        scaler.scale(loss / cfg.grad_accum).backward()
        size = _batch_size(batch)
        total_loss += float(loss.detach()) * size
        seen += size
        if (i + 1) % cfg.grad_accum == 0 or i + 1 == len(loader):
            if cfg.max_grad_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps += 1
            if writer is not None:
                writer.add_scalar("train/loss_step", float(loss.detach()), result.steps)
            if result.steps >= total_steps:
                break
        rate = seen / max(1e-9, time.perf_counter() - started)
        bar.set_postfix(loss=f"{total_loss / max(1, seen):.4f}", samples_per_s=f"{rate:.1f}")
    return total_loss / max(1, seen), seen / max(1e-9, time.perf_counter() - started)


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    if isinstance(batch, list | tuple) and batch:
        return (
            _batch_size(batch[0])
            if isinstance(batch[0], dict | list | tuple | torch.Tensor)
            else len(batch)
        )
    return 1


def _save_checkpoint(
    path: Path, epoch: int, task, optimizer, scheduler, scaler, result: TrainResult
) -> None:
    state = {
        "epoch": epoch,
        "model": task.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "result": json.dumps(result.__dict__),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves half a checkpoint


def _load_checkpoint(path: Path, task, optimizer, scheduler, scaler) -> tuple[int, TrainResult]:
    state = torch.load(
        path, map_location="cpu", weights_only=True
    )  # never unpickle arbitrary objects
    task.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return int(state["epoch"]), TrainResult(**json.loads(state["result"]))


def _load_best(out_dir: Path) -> dict[str, torch.Tensor] | None:
    path = out_dir / "best.pt"
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def _epochs_since_best(result: TrainResult) -> int:
    return 0 if result.best_epoch is None else len(result.history) - result.best_epoch


def _tensorboard(out_dir: Path, required: bool):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if required:
            log.warning(
                "tensorboard is not installed; `pip install verticals[tracking]` to log there"
            )
        return None
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


def _short(value: float) -> float:
    """4 significant digits for the log (integers stay integers)."""
    return value if isinstance(value, int) else float(f"{value:.4g}")


def _log_epoch(out_dir: Path, row: dict[str, float], writer) -> None:
    with (out_dir / "history.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    if writer is not None:
        for key, value in row.items():
            if key not in ("epoch", "step"):
                writer.add_scalar(
                    key.replace("val_", "val/").replace("train_", "train/"),
                    value,
                    int(row["epoch"]),
                )


def plot_history(history: list[dict[str, float]], path: str | Path) -> Path | None:
    """Writes the training curve (train loss and every validation metric per epoch) as a PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    val_keys = sorted({k for row in history for k in row if k.startswith("val_")})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(epochs, [row["train_loss"] for row in history], marker="o", label="train loss")
    if "val_loss" in val_keys:
        axes[0].plot(epochs, [row.get("val_loss") for row in history], marker="o", label="val loss")
    axes[0].set_xlabel("epoch")
    axes[0].legend()
    for key in (k for k in val_keys if k != "val_loss"):
        axes[1].plot(epochs, [row.get(key) for row in history], marker="o", label=key)
    axes[1].set_xlabel("epoch")
    if len(axes[1].lines):
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
