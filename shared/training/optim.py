"""Optimizer, schedule and backbone freezing for the shared loop."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from shared.config import TrainerConfig


def param_groups(task: nn.Module, cfg: TrainerConfig) -> list[dict[str, Any]]:
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


def build_optimizer(task: nn.Module, cfg: TrainerConfig, total_steps: int):
    """AdamW over `param_groups` and the configured warmup + decay schedule."""
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(param_groups(task, cfg))
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}
    warmup = int(math.ceil(cfg.warmup_ratio * total_steps))
    scheduler = get_scheduler(
        name[cfg.schedule], optimizer, num_warmup_steps=warmup, num_training_steps=total_steps
    )
    return optimizer, scheduler


def set_backbone_trainable(task: nn.Module, trainable: bool) -> None:
    """Freezes or unfreezes `task.backbone` (a task without one is left alone)."""
    backbone = getattr(task, "backbone", None)
    if backbone is not None:
        for p in backbone.parameters():
            p.requires_grad_(trainable)


def train_mode(model: nn.Module) -> None:
    """`model.train()`, except that a frozen backbone keeps its BatchNorm statistics and skips
    dropout."""
    model.train()
    backbone = getattr(getattr(model, "module", model), "backbone", None)
    if backbone is not None and not any(p.requires_grad for p in backbone.parameters()):
        backbone.eval()
