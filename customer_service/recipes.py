"""The bot's recipes (frozen, finetune) and `auto`'s choice between them.

- `frozen` keeps the sentence encoder as loaded: the KB is indexed with it, and the intent head
  is a logistic regression on its embeddings (`shared.recipes.fit_logistic_head`), copied into
  the head so the artifact has exactly the format of a fine-tune.
- `finetune` tunes encoder and head through the shared loop (in-batch negatives on question ->
  answer pairs, plus the intent cross-entropy), the head starting at the class prototypes.

There is no `fewshot` recipe here: `finetune` already is contrastive tuning on the labelled
pairs. `auto` scores both by the bot's own decision (an answer, or an intent where the pair has
one) on validation, or by k-fold CV on the training pairs when validation is small.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from shared.adapters import training_view
from shared.devices import seed_everything
from shared.models import embed_texts, load_model
from shared.recipes import RecipeChoice, choose_recipe, fit_chosen, fit_logistic_head
from shared.training import TrainResult, fit

from . import evaluation as ev
from .adapter import adapt
from .config import CustomerServiceConfig
from .ood import Calibration
from .retrieval import (
    INTENT_INPUT_SCALE,
    BotTask,
    KnowledgeIndex,
    answer_text,
    make_collate,
    make_frozen_collate,
)
from .schemas import Dataset

log = logging.getLogger(__name__)

CANDIDATES: tuple[str, ...] = ("frozen", "finetune")
"""The recipes `auto` weighs, cheapest first (a tie goes to the cheaper one)."""
MAX_CV_ROWS = 3000
"""Above this many training pairs `auto` scores on validation even when it is small."""
# Frozen-encoder embeddings per (model, max_seq_length), kept for the process: repeated runs
# (seeds, few-shot draws, CV folds) on the same texts encode them once.
_FROZEN_CACHES: dict[tuple[str, int], dict[str, np.ndarray]] = {}
# The intent head starts at the class prototypes with logits of this many times the cosine.
PROTOTYPE_LOGIT_SCALE = 20.0


@dataclass
class BotData:
    """What every recipe fits from: the data folder, the intent names and the answer texts."""

    data: Dataset
    intents: list[str]
    answer_texts: dict[str, str]

    @property
    def intent_id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.intents)}


def fit_recipe(
    recipe: str,
    cfg: CustomerServiceConfig,
    bot: BotData,
    train: pd.DataFrame,
    val: pd.DataFrame,
    run_dir: Path,
) -> tuple[BotTask, TrainResult | None]:
    """Fits one recipe on the `train` pairs; `val` picks the best epoch of `finetune`."""
    encoder = load_model(cfg.model, "sentence-encoder")
    encoder.max_seq_length = cfg.max_seq_length
    if cfg.adapter is not None:  # only `finetune` comes here with one (see `fit_by_recipe`)
        adapt(encoder, cfg.adapter)
    task = BotTask(encoder, len(bot.intents), cfg.mnrl_scale, cfg.intent_loss_weight).eval()
    head_only = cfg.adapter is None and cfg.trainer.freeze_backbone_epochs >= cfg.trainer.epochs
    if recipe == "frozen" or (head_only and task.head is not None):
        # The encoder stays as loaded: embed every question once, for all runs of the process.
        task.frozen_cache = _FROZEN_CACHES.setdefault((cfg.model, cfg.max_seq_length), {})
    if recipe == "frozen":
        fit_logistic_intents(task, train, bot.intent_id, cfg.trainer.seed)
        return task, None
    rows = [
        (q, bot.answer_texts.get(a, ""), a, bot.intent_id.get(i, -100))
        for q, a, i in zip(train["question"], train["answer_id"], train["intent"], strict=True)
    ]
    collate = make_collate(encoder)
    if task.frozen_cache is not None:
        embed_texts(encoder, [r[0] for r in rows], cache=task.frozen_cache)
        collate = make_frozen_collate(task.frozen_cache)
    if task.head is not None:
        init_head_from_prototypes(task, train, bot.intent_id)
    evaluator = epoch_evaluator(task, bot.data, val, bot.intent_id)
    # through an adapter the loop trains the adapter and head at trainer.lr, the base frozen
    trained = training_view(task) if cfg.adapter is not None else task
    result = fit(trained, rows, collate, cfg.trainer, run_dir, evaluator=evaluator)
    return task.eval(), result


def fit_logistic_intents(
    task: BotTask, train: pd.DataFrame, intent_id: dict[str, int], seed: int
) -> None:
    """Sets the intent head to a logistic regression on the (frozen) question embeddings."""
    if task.head is None:
        return
    known = train[train["intent"].isin(intent_id)]
    if known.empty:
        return
    x = embed_texts(task.backbone, list(known["question"]), cache=task.frozen_cache)
    y = np.array([intent_id[i] for i in known["intent"]])
    weight, bias = fit_logistic_head(x * INTENT_INPUT_SCALE, y, task.head.out_features, seed)
    with torch.no_grad():
        task.head.weight.copy_(torch.from_numpy(weight))
        task.head.bias.copy_(torch.from_numpy(bias))


def init_head_from_prototypes(
    task: BotTask, train_pairs: pd.DataFrame, intent_id: dict[str, int]
) -> None:
    """Starts the intent head at the class means of the training questions (a nearest-centroid classifier).

    With few steps on CPU a randomly initialised head lags far behind retrieval; from the
    prototypes it starts where retrieval is and the loop only refines it.
    """
    known = train_pairs[train_pairs["intent"].isin(intent_id)]
    if known.empty:
        return
    vectors = embed_texts(task.backbone, list(known["question"]), cache=task.frozen_cache)
    ids = np.array([intent_id[i] for i in known["intent"]])
    weight = task.head.weight.detach().clone()
    scale = PROTOTYPE_LOGIT_SCALE / INTENT_INPUT_SCALE  # the head reads scaled embeddings
    for c in np.unique(ids):
        mean = vectors[ids == c].mean(0)
        weight[c] = torch.from_numpy(scale * mean / max(1e-6, float(np.linalg.norm(mean))))
    with torch.no_grad():
        task.head.weight.copy_(weight)
        task.head.bias.zero_()


def epoch_evaluator(task: BotTask, data: Dataset, val: pd.DataFrame, intent_id: dict[str, int]):
    """Validation after each epoch: answer-level top-1 over the answers alone, and intent accuracy.

    The primary metric (which picks the best epoch) is the intent accuracy when there is an
    intent head and validation questions with a known intent, else the retrieval accuracy.
    None without validation questions (the loop then keeps the lowest training loss).
    """
    from shared.training import MetricsEvaluator

    if len(val) == 0:
        return None
    answer_ids = list(data.kb["answer_id"])
    answer_texts = [
        answer_text(t, a) for t, a in zip(data.kb["title"], data.kb["answer"], strict=True)
    ]
    targets = np.array([answer_ids.index(a) if a in answer_ids else -1 for a in val["answer_id"]])
    y = np.array([intent_id.get(i, -1) for i in val["intent"]])
    with_intents = task.head is not None and bool((y >= 0).any())

    def evaluate(_task) -> dict[str, float]:
        q = embed_texts(task.backbone, list(val["question"]), cache=task.frozen_cache)
        a = embed_texts(task.backbone, answer_texts, cache=task.frozen_cache)
        out = {"retrieval_accuracy": float(((q @ a.T).argmax(1) == targets).mean())}
        if with_intents:
            out["intent_accuracy"] = float(
                (ev.intent_logits(task, q).argmax(1) == y)[y >= 0].mean()
            )
        return out

    primary = "intent_accuracy" if with_intents else "retrieval_accuracy"
    return MetricsEvaluator(evaluate, primary)


def decision_accuracy(task: BotTask, bot: BotData, train: pd.DataFrame, evaluated: pd.DataFrame):
    """Share of `evaluated` pairs the bot gets right with default calibration (no handoff).

    The KB is indexed as training indexes it (every answer, plus the `train` paraphrases);
    right means the intent where both sides have one, else the answer (`evaluation.is_correct`).
    """
    from .training import build_kb  # training builds on this module

    kb = build_kb(task, bot.data, train)
    index = KnowledgeIndex(kb.entry_ids, kb.entry_texts, kb.vectors)
    questions = list(evaluated["question"])
    vectors = embed_texts(task.backbone, questions, cache=task.frozen_cache)
    hits = ev.search_all(index, vectors, questions, 0.0)
    logits = ev.intent_logits(task, vectors)
    decisions = ev.decisions_for(hits, logits, bot.intents, kb.answers, Calibration())
    pairs = zip(decisions, evaluated["answer_id"], evaluated["intent"], strict=True)
    return float(np.mean([ev.is_correct(d, a, i) for d, a, i in pairs]))


def fit_by_recipe(
    cfg: CustomerServiceConfig,
    bot: BotData,
    train: pd.DataFrame,
    val: pd.DataFrame,
    run_dir: Path,
) -> tuple[BotTask, TrainResult | None, RecipeChoice]:
    """`cfg.recipe`'s bot model, or `auto`'s choice, and the record (`shared.recipes.fit_chosen`).

    With `cfg.adapter` the recipe is `finetune` through the adapter: `auto` weighs no recipe then,
    since an adapter is asked for its size (one base shared by many), not for its score.
    """
    recipe = "finetune" if cfg.adapter is not None else cfg.recipe
    fitted, choice = fit_chosen(
        recipe,
        lambda recipe: fit_recipe(recipe, cfg, bot, train, val, run_dir),
        lambda: choose(cfg, bot, train, val, run_dir),
        train_rows=len(train),
        val_rows=len(val),
        seed=cfg.trainer.seed,
    )
    if cfg.adapter is not None:
        choice.reason = f"adapter.method={cfg.adapter.method}: fine-tuned through the adapter"
    return (*fitted, choice)


def choose(
    cfg: CustomerServiceConfig,
    bot: BotData,
    train: pd.DataFrame,
    val: pd.DataFrame,
    run_dir: Path,
    candidates: Sequence[str] = CANDIDATES,
) -> tuple[RecipeChoice, tuple[BotTask, TrainResult | None] | None]:
    """`auto`'s `RecipeChoice`, and the winner's fitted model when it was scored on validation.

    Folds are stratified by answer. Scored on validation, `finetune` logs under `run_dir`.
    """
    pool = pd.concat([train, val], ignore_index=True)
    labels = pd.factorize(pool["answer_id"])[0]
    n_train = len(train)
    fitted: dict[str, tuple[BotTask, TrainResult | None]] = {}

    def scorer(recipe: str):
        def score(fit_idx: np.ndarray, eval_idx: np.ndarray) -> float:
            on_val = bool(len(eval_idx)) and int(eval_idx.min()) >= n_train
            fit_rows = pool.iloc[fit_idx].reset_index(drop=True)
            seed_everything(cfg.trainer.seed)
            with tempfile.TemporaryDirectory() as scratch:  # CV folds keep no run logs
                task, result = fit_recipe(
                    recipe,
                    cfg,
                    bot,
                    fit_rows,
                    val if on_val else val.iloc[:0],
                    run_dir if on_val else Path(scratch),
                )
            if on_val:
                fitted[recipe] = (task, result)
            return decision_accuracy(task, bot, fit_rows, pool.iloc[eval_idx])

        return score

    choice = choose_recipe(
        {name: scorer(name) for name in candidates},
        labels,
        np.arange(n_train),
        np.arange(n_train, len(pool)),
        n_classes=int(labels.max()) + 1 if len(labels) else 0,
        folds=cfg.recipe_folds,
        seed=cfg.trainer.seed,
        max_cv_rows=MAX_CV_ROWS,
        metric="accuracy",
    )
    return choice, fitted.get(choice.recipe)
