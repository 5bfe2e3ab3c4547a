"""Training by recipe (fine-tuning through the shared loop), held-out evaluation, the artifact."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from shared.adapters import apply_lora, is_adapted, training_view
from shared.artifacts import save_json, write_artifact
from shared.data import fingerprint, load_table, resolve_splits
from shared.data_report import MANIFEST_KEY, DataReport
from shared.devices import resolve_device, seed_everything
from shared.errors import DataError
from shared.evaluation import classification_metrics
from shared.hf_modeling import export_classifier
from shared.recipes import MANIFEST_KEY as RECIPE_KEY
from shared.splits import ResolvedSplits
from shared.training import MetricsEvaluator, TrainResult, fit

from .config import FinanceConfig
from .model import IGNORE, SentimentTask, make_collate
from .schemas import LABELLED

log = logging.getLogger(__name__)


def load_labelled(path: Path, cfg: FinanceConfig | None = None) -> pd.DataFrame:
    """Reads and validates the labelled table (text, sentiment, optional topic, group, split).

    With `cfg`, its `columns` and `label_map` map the user's column names and labels first.
    """
    df = load_table(
        path,
        LABELLED,
        columns=cfg.columns if cfg else None,
        label_map=cfg.label_map if cfg else None,
    )
    for column in ("topic", "split"):
        if column in df.columns:
            df[column] = df[column].fillna("").astype(str).str.strip()
    if "score" in df.columns:
        outside = np.flatnonzero(~df["score"].between(-1.0, 1.0) & df["score"].notna())
        if len(outside):
            shown = ", ".join(f"row {i + 1}: {df['score'].iloc[i]!r}" for i in outside[:5])
            raise DataError(
                f"{path}: column 'score' must be a number in [-1, 1] (or empty); {shown}"
            )
    return df


def drop_duplicates(df: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """Drops repeated (text, sentiment) rows, keeping the first; fixed val/test rows stay whole.

    A copy on both sides of a drawn split would score the model on a text it trained on.
    """
    held = df["split"].isin(["val", "test"]) if "split" in df.columns else False
    key = df["text"].str.strip().str.casefold() + "\x00" + df["sentiment"]
    repeated = key.duplicated(keep="first") & ~held
    report.drop("repeated text with the same sentiment", int(repeated.sum()))
    clashes = int(
        (key[~repeated].groupby(df["text"].str.strip().str.casefold()).nunique() > 1).sum()
    )
    if clashes:
        report.warn(f"{clashes} texts appear with different sentiments; check their labels")
    return df[~repeated].reset_index(drop=True)


def predict_probs(
    task: SentimentTask, collate, rows: list[tuple[str, int, int]], batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sentiment (N, C) and topic (N, K) probabilities for `rows`, in the task's device."""
    device = next(task.parameters()).device
    probs, topic_probs = [], []
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start : start + batch_size])
        out = task({k: batch[k].to(device) for k in ("input_ids", "attention_mask")})
        probs.append(out["logits"].float().softmax(-1).cpu().numpy())
        if "topic_logits" in out:
            topic_probs.append(out["topic_logits"].float().softmax(-1).cpu().numpy())
    return np.concatenate(probs), (np.concatenate(topic_probs) if topic_probs else None)


def heldout_probs(task, collate, rows) -> tuple[np.ndarray, np.ndarray | None]:
    """`predict_probs` in eval mode without gradients; the task's mode is restored after."""
    was_training = task.training
    task.eval()
    with torch.inference_mode():
        out = predict_probs(task, collate, rows)
    task.train(was_training)
    return out


def fit_score_calibration(
    task, collate, prepared: PreparedData, labels: list[str], seed: int
) -> tuple[Any, dict[str, Any] | None, dict[str, float]]:
    """The score head (`score_head.fit_score_head`) on the validation rows' gold scores, its
    record for the manifest, and the test split's score metrics (the raw reading's beside
    them as `*_raw`). Without a `score` column: (None, None, {})."""
    from .score_head import fit_score_head, raw_scores, score_metrics

    if prepared.data.scores is None:
        return None, None, {}
    order = [labels.index(name) for name in ("negative", "neutral", "positive")]
    probs = {
        split: heldout_probs(task, collate, prepared.rows(split))[0][:, order]
        for split in ("val", "test")
        if prepared.rows(split)
    }
    val = probs.get("val", np.zeros((0, 3)))
    head, record = fit_score_head(val, prepared.scores("val")[: len(val)], "val", seed)
    if head is None:
        prepared.report.warn(f"no score head was fitted: {record['reason']}")
    metrics: dict[str, float] = {}
    if "test" in probs:
        gold, raw = prepared.scores("test"), raw_scores(probs["test"])
        chosen = head.predict(probs["test"]) if head is not None else raw
        metrics |= {f"test_{k}": v for k, v in score_metrics(chosen, gold).items()}
        if head is not None:
            metrics |= {f"test_{k}_raw": v for k, v in score_metrics(raw, gold).items()}
    return head, record, metrics


def evaluate_rows(task, collate, rows, labels: list[str]) -> dict[str, float]:
    """Accuracy, macro-F1 and ECE of sentiment (and topic accuracy when there is a topic head)."""
    if not rows:
        return {}
    probs, topic_probs = heldout_probs(task, collate, rows)
    y = np.array([r[1] for r in rows])
    full = classification_metrics(y, probs, labels)
    metrics = {k: float(full[k]) for k in ("accuracy", "macro_f1", "ece")}
    topics = np.array([r[2] for r in rows])
    if topic_probs is not None and (topics != IGNORE).any():
        known = topics != IGNORE
        metrics["topic_accuracy"] = float((topic_probs.argmax(1)[known] == topics[known]).mean())
    return metrics


def train(cfg: FinanceConfig, data_path: Path, out_dir: Path) -> Path:
    """Fine-tunes the sentiment (and topic) model on `data_path`; writes `out_dir/artifact`.

    Split: the `split` column where it fixes one, else drawn (`val_fraction`, `test_fraction`;
    80/10/10 by default) stratified by sentiment and by `group` when the table has one, so rows
    of one group, e.g. one template or article, never straddle splits. Fixed `val` or `test`
    rows turn off that drawn split. The best epoch is the one with the best validation macro-F1
    (or `trainer.monitor`), the lowest training loss when the validation split is empty; which
    one is recorded as `training.monitor` in the manifest. Test metrics and the data report
    (`data_report`: rows read, dropped, per split and class) go into the manifest. `cfg.recipe`
    says how the model is fitted (`finetune`, `frozen`, `fewshot`, or `auto`'s choice, see
    `recipes.fit_by_recipe`); the choice and every candidate's score go in as `recipe`.
    """
    seed_everything(cfg.trainer.seed)  # new layers are initialised before fit() runs
    data_path, out_dir = Path(data_path), Path(out_dir)
    prepared = prepare_data(cfg, data_path)
    data, split, report = prepared.data, prepared.split, prepared.report
    tr, va, te = split.train, split.val, split.test
    report.check_heldout_sizes()
    train_rows, val_rows, test_rows = (prepared.rows(name) for name in ("train", "val", "test"))
    from .recipes import fit_by_recipe  # it builds on this module's fit_sentiment

    task, tokenizer, collate, result, choice = fit_by_recipe(
        cfg, train_rows, val_rows, len(data.topics) if data.has_topics else 0, out_dir / "run"
    )
    metrics: dict[str, Any] = {}
    for split, rows in (("val", val_rows), ("test", test_rows)):
        scores = evaluate_rows(task, collate, rows, cfg.labels)
        metrics.update({f"{split}_{k}": v for k, v in scores.items()})
    metrics.update(
        {
            "train_rows": len(tr),
            "val_rows": len(va),
            "test_rows": len(te),
        }
    )
    head, head_record, head_metrics = fit_score_calibration(
        task, collate, prepared, cfg.labels, cfg.trainer.seed
    )
    metrics.update(head_metrics)
    log.info("held-out metrics: %s", metrics)
    artifact = write_finance_artifact(
        out_dir / "artifact",
        cfg,
        task,
        tokenizer,
        data.topics,
        data.has_topics,
        metrics,
        fingerprint(data_path),
        training=result,
        data_report=report.as_dict(),
        recipe=choice.as_dict(),
        score_head=(head, head_record),
    )
    report.log(log)
    return artifact


@dataclass
class PreparedData:
    """The labelled table read, deduplicated, mapped to rows and split (see `prepare_data`)."""

    data: LabelledRows
    split: ResolvedSplits
    report: DataReport

    def rows(self, split: str) -> list[tuple[str, int, int]]:
        """The rows `(text, label_id, topic_id)` of `train`, `val` or `test`."""
        return [self.data.rows[i] for i in self.split.indices()[split]]

    def scores(self, split: str) -> np.ndarray | None:
        """The gold scores of a split's rows (NaN where none), None without a `score` column."""
        if self.data.scores is None:
            return None
        return self.data.scores[self.split.indices()[split]]


def prepare_data(cfg: FinanceConfig, data_path: Path) -> PreparedData:
    """Reads `data_path` and splits it as `train` does, so the same config and table give the
    same validation rows again (how `verticals compress` measures on them)."""
    df = load_labelled(data_path, cfg)
    report = DataReport(str(data_path), rows_read=len(df), tables={data_path.name: len(df)})
    df = drop_duplicates(df, report)
    data = labelled_rows(cfg, df, data_path)
    split = resolve_splits(
        len(data.rows),
        fixed=df["split"] if "split" in df.columns else None,
        labels=data.label_ids,
        groups=data.groups,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=cfg.trainer.seed,
    )
    report.add_splits(
        {k: df["sentiment"].iloc[idx].tolist() for k, idx in split.indices().items()},
        split.fixed,
        split.fractions,
    )
    return PreparedData(data, split, report)


@dataclass
class LabelledRows:
    """The labelled table as training rows `(text, label_id, topic_id or -100)`.

    `topics` are the table's topics when it has a `topic` column with values (`has_topics`: a
    topic head is trained), else the config's zero-shot topic names.
    """

    rows: list[tuple[str, int, int]]
    label_ids: np.ndarray
    topics: list[str]
    has_topics: bool
    groups: list[str] | None
    scores: np.ndarray | None = None
    """Gold scores per row (NaN where a row has none); None when the table has no `score`."""


def labelled_rows(cfg: FinanceConfig, df: pd.DataFrame, data_path: Path) -> LabelledRows:
    """Maps sentiments to `cfg.labels` ids and topics to topic ids.

    Raises:
        DataError: when the table has a sentiment that is not one of `cfg.labels`.
    """
    unknown = set(df["sentiment"]) - set(cfg.labels)
    if unknown:
        raise DataError(f"{data_path}: sentiments {sorted(unknown)} not in labels")
    label_ids = df["sentiment"].map({name: i for i, name in enumerate(cfg.labels)}).to_numpy()
    has_topics = "topic" in df.columns and bool(df["topic"].ne("").any())
    topics = sorted(t for t in df["topic"].unique() if t) if has_topics else list(cfg.topics)
    topic_ids = (
        df["topic"].map({t: i for i, t in enumerate(topics)}).fillna(IGNORE).astype(int).to_numpy()
        if has_topics
        else np.full(len(df), IGNORE)
    )
    rows = [
        (str(t), int(y), int(k)) for t, y, k in zip(df["text"], label_ids, topic_ids, strict=True)
    ]
    groups = None
    if "group" in df.columns and df["group"].fillna("").astype(str).ne("").any():
        # a row without a group is a group of its own, not one group of all such rows
        named = df["group"].fillna("").astype(str)
        groups = [g if g else f"\x00row{i}" for i, g in enumerate(named)]
    scores = None
    if "score" in df.columns and df["score"].notna().any():
        scores = df["score"].to_numpy(dtype=np.float64)
    return LabelledRows(rows, label_ids, topics, has_topics, groups, scores)


def fit_sentiment(
    cfg: FinanceConfig,
    train_rows: list[tuple[str, int, int]],
    val_rows: list[tuple[str, int, int]],
    n_topics: int,
    run_dir: Path,
):
    """Builds the task on `cfg.model` and fits it with the shared loop.

    Rows are `(text, label_id, topic_id or -100)`. The evaluator scores `val_rows` and picks the
    best epoch by macro-F1; with no validation rows there is no evaluator, and the loop keeps
    the epoch with the lowest training loss. With `cfg.adapter` the body is wrapped with LoRA
    (`shared.adapters.apply_lora`) and only the adapter and the heads train. Returns (task,
    tokenizer, collate, TrainResult).
    """
    from shared.models import load_model

    tokenizer, body = load_model(cfg.model, "text-backbone")
    if cfg.adapter is not None:
        body = apply_lora(body, cfg.adapter)
    task = SentimentTask(body, len(cfg.labels), n_topics, cfg.topic_loss_weight)
    collate = make_collate(tokenizer, cfg.text.max_length)
    evaluator = None
    if val_rows:
        evaluator = MetricsEvaluator(
            lambda t: evaluate_rows(t, collate, val_rows, cfg.labels), primary_metric="macro_f1"
        )
    trained = training_view(task) if cfg.adapter is not None else task
    result = fit(trained, train_rows, collate, cfg.trainer, run_dir, evaluator=evaluator)
    return task, tokenizer, collate, result


def write_finance_artifact(
    final: Path,
    cfg: FinanceConfig,
    task: SentimentTask,
    tokenizer,
    topics: list[str],
    has_topics: bool,
    metrics: dict[str, Any],
    data_fingerprint: str,
    training: TrainResult | None = None,
    data_report: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    score_head: tuple[Any, dict[str, Any] | None] = (None, None),
) -> Path:
    """Writes the classifier as one transformers folder (`model/`) and `finance.json`, atomically.

    A task whose body carries LoRA is written as an adapter artifact instead: the adapter and
    the heads alone, with the base model's name and hash in the manifest (see `lora.py`).
    `data_report` (see `shared.data_report`) goes into the manifest as `data_report`, and
    `recipe` (`shared.recipes.RecipeChoice.as_dict()`) as `recipe`. `score_head` is the
    fitted `score_head.ScoreHead` (or None) and its record, which goes in as `score_head`.
    """
    from . import lora

    extra = {MANIFEST_KEY: data_report} if data_report is not None else {}
    if recipe is not None:
        extra[RECIPE_KEY] = recipe
    head, head_record = score_head
    if head_record is not None:
        extra["score_head"] = head_record
    adapted = is_adapted(task.backbone)
    if adapted:
        extra[lora.MANIFEST_KEY] = lora.adapter_section(task, cfg.model)
        extra["formats"] = [lora.peft_format(cfg.model)]
    topic_mode = "classifier" if has_topics else ("zero-shot" if cfg.topics else "none")
    with write_artifact(
        final,
        vertical="finance_sentiment",
        model_name=cfg.model,
        config=cfg.model_dump(),
        metrics=metrics,
        label_map=cfg.labels,
        data_fingerprint=data_fingerprint,
        training=training,
        extra=extra or None,
    ) as tmp:
        task.to("cpu")
        if adapted:
            lora.write_adapter(tmp, task, cfg.model)
        else:  # loads with AutoModelForSequenceClassification (trust_remote_code)
            export_classifier(
                str(tmp / "model"),
                task.backbone,
                task.head,
                cfg.labels,
                tokenizer,
                task.topic_head,
                topics if topic_mode == "classifier" else None,
            )
        save_json(
            tmp / "finance.json",
            {
                "labels": cfg.labels,
                "topics": topics if topic_mode != "none" else [],
                "topic_mode": topic_mode,
                "topic_descriptions": cfg.topics if topic_mode == "zero-shot" else {},
                "score": "P(positive) - P(negative)" if head is None else "score head",
                "score_head": None if head is None else head.as_dict(),
            },
        )
    task.to(resolve_device(cfg.trainer.device))
    return final
