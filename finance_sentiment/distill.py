"""Distilling a fine-tuned finance_sentiment model into a shallower one of the same family.

The student is the teacher's own body with fewer transformer layers (`shared.distill.
shrink_transformer`: layers taken evenly from the teacher's, first and last included, as
DistilBERT takes every other one), with the teacher's embeddings and heads as its start. It
trains with `shared.distill.DistillationTask` (KL to the teacher's softened logits plus its
own cross-entropy) through the shared loop, on the training split of the data as `train`
split it (the same seed and fractions), and keeps the epoch with the best validation macro-F1.
Half the layers run in about half the time; the student is an ordinary artifact (`model/` as
`train` writes it), so `serve`, `predict`, `evaluate` and the other compress methods take it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shared.distill import DistillationTask, shrink_transformer
from shared.training import MetricsEvaluator, fit

from .config import FinanceConfig
from .model import SentimentTask, make_collate
from .training import evaluate_rows, prepare_data

log = logging.getLogger(__name__)

TEMPERATURE, ALPHA = 2.0, 0.5


def default_layers(teacher: SentimentTask) -> int:
    """The student's depth by default: half the teacher's layers (3 of MiniLM-L6's 6)."""
    return max(1, len(teacher.backbone.encoder.layer) // 2)


def student_of(teacher: SentimentTask, n_layers: int | None = None) -> SentimentTask:
    """The teacher with `n_layers` (default: half) of its transformer layers and its heads."""
    body = shrink_transformer(teacher.backbone, n_layers or default_layers(teacher))
    n_topics = teacher.topic_head.out_features if teacher.topic_head is not None else 0
    student = SentimentTask(body, teacher.head.out_features, n_topics, teacher.topic_loss_weight)
    student.head.load_state_dict(teacher.head.state_dict())
    if n_topics:
        student.topic_head.load_state_dict(teacher.topic_head.state_dict())
    return student


def student_trainer(cfg: FinanceConfig):
    """The teacher's loop settings (its epochs, learning rates, seed) for a student that
    starts trained: no frozen epochs, and a fresh run rather than a resumed one."""
    return cfg.trainer.model_copy(update={"freeze_backbone_epochs": 0, "resume": False})


def distill(
    teacher: SentimentTask,
    tokenizer: Any,
    cfg: FinanceConfig,
    data: Path,
    run_dir: Path,
    *,
    n_layers: int | None = None,
    temperature: float = TEMPERATURE,
    alpha: float = ALPHA,
) -> tuple[SentimentTask, dict[str, Any]]:
    """Trains a student of `teacher` (`n_layers` deep, default half) on the training split of
    `data`, the teacher's soft labels and the gold ones together.

    Returns:
        The student (eval mode) and what to record: its layers, the loss weights, and the
        validation and test metrics of teacher and student.
    """
    prepared = prepare_data(cfg, Path(data))
    train_rows, val_rows, test_rows = (prepared.rows(s) for s in ("train", "val", "test"))
    teacher = teacher.float().cpu().eval()
    student = student_of(teacher, n_layers)
    n_layers = len(student.backbone.encoder.layer)
    task = DistillationTask(student, teacher, temperature=temperature, alpha=alpha)
    collate = make_collate(tokenizer, cfg.text.max_length)
    evaluator = None
    if val_rows:
        evaluator = MetricsEvaluator(
            lambda _: evaluate_rows(student, collate, val_rows, cfg.labels),
            primary_metric="macro_f1",
        )
    log.info(
        "distilling %d layers into %d (T=%s, alpha=%s) on %d rows",
        len(teacher.backbone.encoder.layer),
        n_layers,
        temperature,
        alpha,
        len(train_rows),
    )
    result = fit(task, train_rows, collate, student_trainer(cfg), run_dir, evaluator=evaluator)
    student.eval()
    scores = {}
    for name, model in (("teacher", teacher), ("student", student)):
        for split, rows in (("val", val_rows), ("test", test_rows)):
            for key, value in evaluate_rows(model, collate, rows, cfg.labels).items():
                scores[f"{name}_{split}_{key}"] = value
    return student, {
        "layers": {"teacher": len(teacher.backbone.encoder.layer), "student": n_layers},
        "temperature": temperature,
        "alpha": alpha,
        "train_rows": len(train_rows),
        "best_epoch": getattr(result, "best_epoch", None),
        "metrics": scores,
    }
