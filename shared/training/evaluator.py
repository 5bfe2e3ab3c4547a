"""The evaluator contract: a callable that returns metrics and says which one matters.

Like sentence-transformers' `SentenceEvaluator`, an evaluator carries its own meaning: its
`primary_metric` and whether higher is better. The loop monitors that metric unless
`TrainerConfig.monitor` names another, and a monitored metric that is missing is an error,
never a silent fallback to the training loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn

from shared.errors import VerticalsError


@runtime_checkable
class Evaluator(Protocol):
    """Scores a task (in eval mode, under `inference_mode`) on held-out data.

    Attributes:
        primary_metric: The key of the returned dict that selects the best epoch.
        greater_is_better: Whether a higher `primary_metric` is better.
    """

    primary_metric: str
    greater_is_better: bool

    def __call__(self, task: nn.Module) -> dict[str, float]: ...


@dataclass(frozen=True)
class MetricsEvaluator:
    """An :class:`Evaluator` from a plain function `task -> dict[str, float]`.

    Example:
        >>> evaluator = MetricsEvaluator(lambda task: {"accuracy": 0.9}, "accuracy")
    """

    fn: Callable[[nn.Module], dict[str, float]]
    primary_metric: str
    greater_is_better: bool = True

    def __call__(self, task: nn.Module) -> dict[str, float]:
        return self.fn(task)


@dataclass(frozen=True)
class Monitor:
    """Which history key picks the best epoch, and its direction (`min` or `max`)."""

    key: str
    mode: str

    def improved(self, value: float, best: float | None) -> bool:
        return best is None or (value < best if self.mode == "min" else value > best)

    def value(self, row: dict[str, float]) -> float:
        """The monitored value of one epoch's row.

        Raises:
            VerticalsError: naming the metric and the ones that exist, when it is missing.
        """
        if self.key not in row:
            keys = ", ".join(sorted(k for k in row if k not in ("epoch", "step")))
            raise VerticalsError(
                f"monitored metric {self.key!r} is not among this epoch's metrics ({keys}); "
                "set trainer.monitor to one of them, or leave it unset to use the evaluator's "
                "primary metric"
            )
        return float(row[self.key])


def resolve_monitor(monitor: str | None, mode: str | None, evaluator: Evaluator | None) -> Monitor:
    """The monitor for a run: the config's choice, else the evaluator's primary metric.

    Without an evaluator the loop can only monitor the training loss; naming any other metric
    is then an error (there is nothing to compute it from).

    Args:
        monitor: `TrainerConfig.monitor`: an evaluator metric (`accuracy`, read as
            `val_accuracy`), a history key (`train_loss`, `val_loss`), or None.
        mode: `TrainerConfig.monitor_mode`, or None for the evaluator's direction.
        evaluator: The run's evaluator, if any.
    """
    if evaluator is None:
        if monitor not in (None, "train_loss"):
            raise VerticalsError(
                f"trainer.monitor={monitor!r} needs validation metrics, but this run has no "
                "evaluator (is the validation split empty?); add validation rows or leave "
                "trainer.monitor unset to keep the epoch with the lowest training loss"
            )
        if mode == "max":
            raise VerticalsError(
                "trainer.monitor_mode=max with no evaluator would keep the epoch with the highest "
                "training loss; add validation rows or leave trainer.monitor_mode unset"
            )
        return Monitor("train_loss", "min")
    name = monitor or evaluator.primary_metric
    if name == "train_loss" and mode == "max":
        raise VerticalsError("trainer.monitor=train_loss needs trainer.monitor_mode=min (or unset)")
    if name == "train_loss" or name.startswith("val_"):
        key = name
    else:
        key = f"val_{name}"
    if mode is None:
        if name in (evaluator.primary_metric, f"val_{evaluator.primary_metric}"):
            mode = "max" if evaluator.greater_is_better else "min"
        elif name.endswith("loss"):
            mode = "min"
        else:
            raise VerticalsError(
                f"trainer.monitor={name!r} is not the evaluator's primary metric "
                f"({evaluator.primary_metric!r}); set trainer.monitor_mode to min or max as well"
            )
    return Monitor(key, mode)
