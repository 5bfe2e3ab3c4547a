"""Run by test_distributed.py under `torchrun --nproc-per-node 2`: trains the loop's test task."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_training import Task, cfg, collate, make_data  # noqa: E402

from shared import distributed  # noqa: E402
from shared.training import fit  # noqa: E402

out = Path(sys.argv[1])
task = Task()
fit(task, make_data(128), collate, cfg(epochs=6, batch_size=8), out)
torch.save(task.state_dict(), out / f"rank{distributed.rank()}.pt")
