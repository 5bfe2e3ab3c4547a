"""Training: split, fine-tune the two towers through `shared.training.fit`, index, fit the ranker.

The artifact holds the fine-tuned item tower (`encoder/`, safetensors), the user tower, the FAISS
index with the item embeddings, the catalogue, the interactions the service starts from, the
ranker (JSON) and held-out metrics of retrieval alone and with the ranker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from shared.artifacts import save_json, save_weights, write_artifact
from shared.data import fingerprint
from shared.data_report import MANIFEST_KEY
from shared.devices import resolve_device, seed_everything
from shared.errors import DataError
from shared.models import embed_texts, load_model, tokenize
from shared.training import MetricsEvaluator, TrainResult, TrainState, fit

from .data import Dataset, collapse, load_dataset
from .data_report import build_data_report, report_for_manifest, split_sizes_line
from .index import ItemIndex
from .metrics import cold_rows, held_out_mask
from .pipeline import EvalSet, eval_set, evaluate_model, ranker_training_data, user_vectors
from .ranker import TEXT_FEATURES, ItemStats, Ranker
from .schemas import RecommenderConfig, RecTrainerConfig
from .split import Split, histories, make_split
from .towers import TwoTowerTask, UserTower, build_collate, make_examples

log = logging.getLogger(__name__)
PRIMARY_METRIC = "retrieval_recall_at_10"


@dataclass
class Trained:
    """What training leaves in memory (the demo and benchmarks reuse it)."""

    encoder: object
    tower: UserTower
    emb: np.ndarray
    ranker: Ranker
    metrics: dict[str, float | int | str]  # held-out metrics
    split: Split
    test_set: EvalSet
    row_of: dict[str, int]
    result: TrainResult | None = None  # the loop's record: which metric kept which epoch
    trainer: RecTrainerConfig | None = None  # the loop's settings as run (max_steps resolved)


def load_encoder(name: str, max_seq_length: int, device: str = "auto"):
    encoder = load_model(name, "sentence-encoder", device=str(resolve_device(device)))
    encoder.max_seq_length = max_seq_length
    return encoder


def stats_at(ds_items: pd.DataFrame, rows: pd.DataFrame, trending_days: float) -> ItemStats:
    now = rows["ts"].max() if len(rows) else pd.Timestamp.now(tz="UTC")
    return ItemStats.compute(
        list(ds_items["item_id"]),
        list(ds_items["category"]),
        ds_items["created_at"],
        rows,
        now,
        trending_days,
    )


class CatalogueCache:
    """Loop hooks that keep `task.item_cache` (what histories are read from) in step with the
    item tower, and leave in `emb` the catalogue as the returned tower embeds it.

    The cache is refreshed from the current weights when training starts (after a resume has
    loaded its checkpoint), after every epoch (before the evaluator reads it) and once more
    after the best weights are loaded back.
    """

    def __init__(self, task: TwoTowerTask, texts: list[str]) -> None:
        self.task, self.texts = task, list(texts)
        self.emb = np.zeros((0, task.item_cache.shape[1]), dtype=np.float32)

    def refresh(self) -> np.ndarray:
        self.task.eval()  # no dropout; the loop sets train mode again at the next epoch
        self.emb = embed_texts(self.task.backbone, self.texts)
        self.task.item_cache = torch.as_tensor(self.emb, device=self.task.item_cache.device)
        return self.emb

    def on_train_start(self, state: TrainState) -> None:
        self.refresh()

    def on_epoch_end(self, state: TrainState) -> None:
        self.refresh()

    def on_train_end(self, state: TrainState) -> None:
        self.refresh()


def retrieval_evaluator(
    cache: CatalogueCache, tower: UserTower, val: EvalSet, max_history: int
) -> MetricsEvaluator | None:
    """Full-ranking retrieval metrics of the towers on the validation users (none: no evaluator).

    The keys are those of `evaluate_model` (`retrieval_recall_at_10`, ...), so the history holds
    `val_retrieval_recall_at_10`, the primary metric.
    """
    if not len(val.targets):
        return None

    def score(_task: TwoTowerTask) -> dict[str, float]:
        users = user_vectors(tower, cache.emb, val, max_history)
        return evaluate_model(users, cache.emb, val, None, None, 0)

    return MetricsEvaluator(score, primary_metric=PRIMARY_METRIC)


@dataclass
class Towers:
    """Trained towers, the catalogue embedded by the item tower, and how training went."""

    encoder: object
    tower: UserTower
    emb: np.ndarray
    result: TrainResult
    trainer: RecTrainerConfig


def bounded_trainer(trainer: RecTrainerConfig, n_examples: int) -> RecTrainerConfig:
    """The loop's settings with `max_steps` set: as given, else min(all epochs, `step_budget`).

    A full epoch over every next-item example of a large log is thousands of steps (hours on
    a CPU); a few hundred already reach most of what the towers learn. Setting
    `trainer.max_steps` runs exactly that many.
    """
    if trainer.max_steps is not None:
        return trainer
    batches = max(1, -(-n_examples // trainer.batch_size))
    total = max(1, -(-batches // trainer.grad_accum)) * trainer.epochs
    steps = min(total, trainer.step_budget)
    log.info(
        "training budget: %d step(s) of %d (%d epoch(s) over %d examples); "
        "set trainer.max_steps to change it",
        steps,
        total,
        trainer.epochs,
        n_examples,
    )
    return trainer.model_copy(update={"max_steps": steps})


def fit_towers(
    cfg: RecommenderConfig, items: pd.DataFrame, split: Split, row_of: dict[str, int], run_dir: Path
) -> Towers:
    """Fine-tunes the item tower and learns the user tower on next-item prediction.

    The best epoch's weights (by `trainer.monitor`, else validation Recall@10, else the training
    loss) are kept, and the returned embeddings are the catalogue embedded with them.
    """
    encoder = load_encoder(cfg.model, cfg.max_seq_length, cfg.trainer.device)
    dim = encoder.get_embedding_dimension()
    tower = UserTower(dim, cfg.max_history)
    task = TwoTowerTask(encoder, tower, len(items), dim, cfg.temperature)
    examples = make_examples(histories(split.train, row_of), cfg.max_history, cfg.min_history)
    if not examples:
        raise DataError(
            "no training examples: every user needs at least two interactions before the held-out ones"
        )
    cache = CatalogueCache(task, list(items["text"]))
    val = eval_set(split.train, split.val, row_of, cfg.max_history)
    collate = build_collate(
        partial(tokenize, encoder),
        cache.texts,
        list(items["category"]),
        cfg.max_history,
        cfg.hard_negatives,
        cfg.trainer.seed,
    )
    trainer = bounded_trainer(cfg.trainer, len(examples))
    log.info(
        "training two towers on %d next-item examples, %d step(s)",
        len(examples),
        trainer.max_steps,
    )
    result = fit(
        task,
        examples,
        collate,
        trainer,
        run_dir,
        evaluator=retrieval_evaluator(cache, tower, val, cfg.max_history),
        callbacks=[cache],
    )
    task.eval()
    return Towers(encoder, tower, cache.emb, result, trainer)


def train_model(cfg: RecommenderConfig, ds: Dataset, run_dir: Path) -> Trained:
    """Splits by `cfg.split`, trains the towers, learns the ranker on validation, scores test."""
    seed_everything(cfg.trainer.seed)  # new layers are initialised before fit() runs
    items = ds.items
    row_of = {item: row for row, item in enumerate(items["item_id"])}
    split = make_split(cfg, collapse(ds.interactions))
    log.info("split: %s", split.protocol)
    towers = fit_towers(cfg, items, split, row_of, run_dir)
    encoder, tower, emb = towers.encoder, towers.tower, towers.emb
    val = eval_set(split.train, split.val, row_of, cfg.max_history)
    ranker = Ranker(cfg.ranker)
    behaviour_only = Ranker(cfg.ranker, masked=TEXT_FEATURES)  # what the text adds: ablation
    metrics: dict[str, float | int | str] = {}
    if len(val.targets):
        stats_val = stats_at(items, split.train, cfg.trending_days)
        x, y = ranker_training_data(
            user_vectors(tower, emb, val, cfg.max_history),
            emb,
            val,
            stats_val,
            cfg.candidates,
            cfg.extra_candidates,
        )
        ranker.fit(x, y, seed=cfg.trainer.seed)
        behaviour_only.fit(x, y, seed=cfg.trainer.seed)
        # the share of validation targets the candidate sources find: the ranker's ceiling
        metrics["val_candidate_recall"] = float(y.sum() / sum(map(len, val.relevant)))
    history = pd.concat([split.train, split.val], ignore_index=True)
    test = eval_set(history, split.test, row_of, cfg.max_history)
    metrics["split"] = split.protocol
    metrics["test_users"] = len(test.targets)
    metrics["test_items_held_out"] = int(sum(map(len, test.relevant)))
    if len(test.targets):
        cold = held_out_mask(test.relevant, cold_rows(history, items["item_id"]))
        stats_test = stats_at(items, history, cfg.trending_days)
        test_vecs = user_vectors(tower, emb, test, cfg.max_history)
        args = (stats_test, cfg.candidates)
        metrics |= evaluate_model(
            test_vecs, emb, test, ranker, *args, cold=cold, extra=cfg.extra_candidates
        )
        if ranker.kind != "none" and behaviour_only.kind != "none":
            ablated = evaluate_model(
                test_vecs, emb, test, behaviour_only, *args, cold=cold, extra=cfg.extra_candidates
            )
            metrics |= {
                f"no_text_{k}": v for k, v in ablated.items() if "ranked_" in k
            }  # the same candidates, ranked without the text features
    return Trained(
        encoder, tower, emb, ranker, metrics, split, test, row_of, towers.result, towers.trainer
    )


def train(cfg: RecommenderConfig, data_path: Path, out_dir: Path) -> Path:
    """`verticals train recommender`: writes `out_dir/artifact` (and logs under `out_dir/run`).

    `cfg.columns` maps the tables' columns onto the schemas' names. The data report
    (interactions read, dropped and why, each split's rows, users and items, warnings for small
    held-out sets) is logged at the end and stored in the manifest as `data_report`.
    """
    out_dir = Path(out_dir)
    ds = load_dataset(Path(data_path), cfg.event_weights, cfg.on_unknown_items, cfg.columns)
    trained = train_model(cfg, ds, out_dir / "run")
    return write_model(cfg, ds, trained, out_dir / "artifact")


def write_model(cfg: RecommenderConfig, ds: Dataset, trained: Trained, final: Path) -> Path:
    """Writes the artifact folder atomically, with the held-out metrics, the training record and
    the data report (`recommender.data_report`), which is logged once the artifact is in place."""
    metrics = {k: v for k, v in trained.metrics.items() if isinstance(v, int | float | str)}
    report = build_data_report(cfg, ds, trained.split)
    if trained.trainer is not None:  # the steps the loop ran under, not "unset"
        cfg = cfg.model_copy(update={"trainer": trained.trainer})
    with write_artifact(
        final,
        vertical="recommender",
        model_name=cfg.model,
        config=cfg.model_dump(mode="json"),
        metrics=metrics,
        data_fingerprint=fingerprint(*ds.files),
        training=trained.result,
        extra={MANIFEST_KEY: report_for_manifest(report, ds), "dim": int(trained.emb.shape[1])},
    ) as tmp:
        trained.encoder.save(str(tmp / "encoder"))
        save_weights(tmp / "user_tower.safetensors", trained.tower.state_dict())
        ItemIndex(trained.emb.shape[1], cfg.index).build(
            list(ds.items["item_id"]), trained.emb
        ).save(tmp / "index")
        items = ds.items.drop(columns=["text"]).copy()
        items["created_at"] = items["created_at"].map(
            lambda t: None if pd.isna(t) else t.isoformat()
        )
        items.to_json(tmp / "items.jsonl", orient="records", lines=True, force_ascii=False)
        events = ds.interactions.copy()
        events["ts"] = events["ts"].map(lambda t: t.isoformat())
        events.to_json(tmp / "interactions.jsonl", orient="records", lines=True, force_ascii=False)
        save_json(tmp / "ranker.json", trained.ranker.to_json())
    report.log(log)
    log.info("%s", split_sizes_line(report))
    return final
