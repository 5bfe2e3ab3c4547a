"""The shared training loop, split by concern (as torchtune's `training/`).

- `loop`: `fit`, readable top to bottom;
- `evaluator`: the `Evaluator` contract and how the monitored metric is chosen;
- `state`: `TrainResult`, `TrainState` and the `Callback` hooks;
- `optim`: AdamW groups, schedules, backbone freezing;
- `checkpoint`: exact-resume checkpoints and the best weights;
- `tracking`: `history.jsonl`, TensorBoard and the training-curve PNG.
"""

from shared.training.evaluator import Evaluator, MetricsEvaluator, Monitor, resolve_monitor
from shared.training.loop import batch_size, fit, move_to
from shared.training.state import Callback, TrainResult, TrainState
from shared.training.tracking import plot_history

__all__ = [
    "Callback",
    "Evaluator",
    "MetricsEvaluator",
    "Monitor",
    "TrainResult",
    "TrainState",
    "batch_size",
    "fit",
    "move_to",
    "plot_history",
    "resolve_monitor",
]
