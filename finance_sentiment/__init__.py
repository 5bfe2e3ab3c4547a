"""finance_sentiment: a financial sentiment monitor with per-topic trends and surge alerts.

Fine-tunes a sentiment classifier (MiniLM by default) on labelled financial text, scores a live
stream of news and posts with it, follows sentiment per topic and entity over time windows, and
raises alerts when negativity or volume surges. Heavy modules load lazily inside the wrappers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.registry import Compressor, Vertical

from .config import FinanceConfig
from .schemas import LABELLED, STREAM
from .settings import FinanceSettings


def train(cfg: FinanceConfig, data_path: Path, out_dir: Path) -> Path:
    from .training import train as _train

    return _train(cfg, Path(data_path), Path(out_dir))


def load(artifact_dir: Path, settings: FinanceSettings):
    from .runtime import load as _load

    return _load(Path(artifact_dir), settings)


def build_router():
    from .service import build_router as _build

    return _build()


def demo(workdir: Path) -> dict[str, Any]:
    from .demo import run_demo

    return run_demo(Path(workdir))


def example_data(folder: Path) -> Path:
    """A tiny generated labelled set (`labelled.csv`) for smoke tests."""
    from .generate import make_labelled

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    make_labelled(n_per_template=2, seed=0).to_csv(folder / "labelled.csv", index=False)
    return folder / "labelled.csv"


def example_inputs(data_path: Path) -> list[dict[str, Any]]:
    return [
        {"text": "Norvale Bank shares plunge 12% after profit warning"},
        {"text": "Quillon Systems raises full-year guidance on robust cloud revenue"},
    ]


def evaluate(runtime, data_path: Path):
    """The `EvaluationReport` of an artifact on a labelled table (see `evaluation.py`)."""
    from .evaluation import evaluate as _evaluate

    return _evaluate(runtime, Path(data_path))


def compress_apply(job) -> dict[str, Any]:
    """`Compressor.apply`: writes the compressed model into `job.out` (see `compress.py`)."""
    from .compress import apply

    return apply(job)


def compress_validation(artifact_dir: Path, data_path: Path):
    """`Compressor.validation`: the validation split of `data_path` and its macro-F1."""
    from .compress import validation

    return validation(Path(artifact_dir), Path(data_path))


def smoke_request(client, data_path: Path):
    return client.post(
        "/v1/finance_sentiment/score", json={"texts": ["Halcrest Financial cuts outlook", ""]}
    )


VERTICAL = Vertical(
    name="finance_sentiment",
    summary="Financial sentiment monitor: fine-tuned scoring, per-topic trends and surge alerts.",
    config_cls=FinanceConfig,
    train=train,
    load=load,
    build_router=build_router,
    demo=demo,
    example_data=example_data,
    example_inputs=example_inputs,
    smoke_overrides={
        "model": "random:bert-tiny",
        "recipe": "finetune",
        "trainer": {"max_steps": 2, "epochs": 1, "batch_size": 8, "progress": False},
    },
    smoke_request=smoke_request,
    evaluate=evaluate,
    schemas={"labelled_text": LABELLED, "stream_items": STREAM},
    settings_cls=FinanceSettings,
    compress=Compressor(
        methods=(
            "int8",
            "onnx",
            "onnx-int8",
            "interpolate",
            "fp16",
            "bf16",
            "lora-merge",
            "distill",
        ),
        apply=compress_apply,
        validation=compress_validation,
    ),
)
