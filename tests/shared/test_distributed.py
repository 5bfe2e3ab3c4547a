"""Data-parallel training: two CPU processes under torchrun stay in lockstep; rank 0 writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.mark.slow
def test_two_processes_train_in_lockstep(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    script = Path(__file__).parent / "ddp_train_script.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    subprocess.run(
        [torchrun, "--nproc-per-node", "2", "--master-port", "29517", str(script), str(tmp_path)],
        check=True,
        env=env,
        timeout=240,
        capture_output=True,
    )
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)  # gradients were all-reduced every step
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]  # one writer, not two
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[0]["step"] == 8  # 128 examples / 2 ranks / batch 8
