"""What the loop carries between epochs, and the hooks that may act on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn


@dataclass
class TrainResult:
    """What `fit` hands back: the per-epoch history and the best monitored value.

    `monitor` and `monitor_mode` say which history key chose `best_epoch`, so an artifact can
    record why its weights were kept.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    steps: int = 0
    stopped_early: bool = False
    monitor: str | None = None
    monitor_mode: str | None = None

    def summary(self) -> dict[str, Any]:
        """What chose the kept weights, for the artifact's manifest and model card."""
        return {
            "monitor": self.monitor,
            "monitor_mode": self.monitor_mode,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "epochs": len(self.history),
            "steps": self.steps,
            "stopped_early": self.stopped_early,
        }


@dataclass
class TrainState:
    """The loop's state as hooks see it.

    Attributes:
        task: The module being trained (unwrapped from DDP).
        epoch: 0-based index of the current epoch.
        total_steps: Optimizer steps this run will take at most.
        result: History, best value and step count so far.
        bad_epochs: Epochs since the monitored value last improved.
    """

    task: nn.Module
    epoch: int
    total_steps: int
    result: TrainResult
    bad_epochs: int = 0

    @property
    def steps(self) -> int:
        return self.result.steps


class Callback(Protocol):
    """Loop hooks: work that belongs at a point of the loop, not inside `evaluate`.

    Implement any of these; the loop calls those that exist, in the order the callbacks are
    given. `on_epoch_end` runs after the epoch's steps and before evaluation (refresh a cache
    the evaluator reads, update an EMA teacher); `on_train_end` runs after the best weights
    are loaded back (rebuild what depends on the final weights).
    """

    def on_train_start(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...


HOOKS = ("on_train_start", "on_epoch_end", "on_train_end")


def call_hooks(callbacks: list[Any], hook: str, state: TrainState) -> None:
    """Calls `hook` on every callback that defines it."""
    assert hook in HOOKS, hook
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(state)
