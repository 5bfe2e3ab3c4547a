"""recommender: a text-based recommender that learns from behaviour and ranks, cold start included.

Two towers (a fine-tuned sentence-transformer over item text, recency-weighted attention pooling
over the user's history) retrieve candidates from a FAISS index, joined by co-interaction and
popular items; a logistic ranker adds popularity, trend, item age, category affinity and the
item-item co-occurrence with the history; rules exclude seen items, filter categories and
diversify. New items are embedded and indexed the moment they are added.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.registry import Compressor, Vertical
from shared.settings import ServeSettings

from .schemas import INTERACTIONS, ITEMS, RecommenderConfig

if TYPE_CHECKING:
    from shared.reports import EvaluationReport


def _train(cfg: RecommenderConfig, data_path: Path, out_dir: Path) -> Path:
    from .training import train

    return train(cfg, data_path, out_dir)


def _load(artifact_dir: Path, settings: ServeSettings) -> Any:
    from .recommend import RecommenderRuntime

    return RecommenderRuntime(artifact_dir, settings)


def _build_router() -> Any:
    from .service import build_router

    return build_router()


def _demo(workdir: Path) -> dict[str, Any]:
    from .demo import run_demo

    return run_demo(workdir)


def _example_data(folder: Path) -> Path:
    from .generate import write_dataset

    return write_dataset(folder, n_users=40, per_subtopic=3, seed=0)


def _example_inputs(data_path: Path) -> list[dict[str, Any]]:
    return [{"user_id": "u0001", "k": 5}, {"user_id": "someone-new", "k": 3}]


def _smoke_request(client: Any, data_path: Path) -> Any:
    return client.get("/v1/recommender/users/u0001/recommendations", params={"k": 5})


def _evaluate(runtime: Any, data_path: Path) -> EvaluationReport:
    """The held-out `EvaluationReport` of a loaded artifact on a dataset, under its `split`."""
    from .evaluate import evaluate_runtime

    return evaluate_runtime(runtime, data_path)


def _compress_apply(job: Any) -> dict[str, Any]:
    from .compress import apply

    return apply(job)


def _compress_validation(artifact_dir: Path, data_path: Path) -> Any:
    from .compress import validation

    return validation(artifact_dir, data_path)


VERTICAL = Vertical(
    name="recommender",
    summary="Text-based two-tower recommender with a ranker, rules and cold start.",
    config_cls=RecommenderConfig,
    train=_train,
    load=_load,
    build_router=_build_router,
    demo=_demo,
    example_data=_example_data,
    example_inputs=_example_inputs,
    smoke_overrides={
        "model": "random:bert-tiny",
        "max_seq_length": 32,
        "trainer": {"max_steps": 2, "batch_size": 8, "progress": False},
    },
    smoke_request=_smoke_request,
    evaluate=_evaluate,
    schemas={"items": ITEMS, "interactions": INTERACTIONS},
    compress=Compressor(("int8",), _compress_apply, _compress_validation),
)
