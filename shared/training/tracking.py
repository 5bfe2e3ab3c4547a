"""What a run leaves to read: `history.jsonl`, TensorBoard scalars and `training_curve.png`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class RunLog:
    """Writes one row per epoch to `history.jsonl` and, when asked, to TensorBoard.

    Args:
        out_dir: The run folder.
        tensorboard: True requires TensorBoard (a warning when missing), None uses it when it is
            installed, False never does.
        enabled: False on the non-main ranks of a data-parallel run (rank 0 alone writes).
    """

    def __init__(self, out_dir: Path, tensorboard: bool | None, enabled: bool = True) -> None:
        self.path = out_dir / "history.jsonl"
        self.enabled = enabled
        self.writer = (
            _tensorboard(out_dir, bool(tensorboard))
            if enabled and tensorboard is not False
            else None
        )

    def start(self, rows: list[dict[str, float]]) -> None:
        """Starts the file with the rows of a resumed run (none when fresh): no stale epochs."""
        if self.enabled:
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def step(self, loss: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar("train/loss_step", loss, step)

    def epoch(self, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "step"):
                    tag = key.replace("val_", "val/").replace("train_", "train/")
                    self.writer.add_scalar(tag, value, int(row["epoch"]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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


def short(value: float) -> float:
    """4 significant digits for the log (integers stay integers)."""
    return value if isinstance(value, int) else float(f"{value:.4g}")


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
