"""The finance model's recipes (frozen, fewshot, finetune) and `auto`'s choice between them.

`frozen` keeps the body as loaded and fits logistic-regression heads (`shared.recipes`) on the
same mean-pooled vectors that `SentimentTask` feeds its heads, then copies their coefficients
into `task.head` and `task.topic_head`, so the artifact has exactly the format of a fine-tune.
`fewshot` first tunes the body on label pairs with the cosine-similarity loss through the shared
loop (`shared.fewshot`), then fits the heads the same way. `finetune` is `fit_sentiment`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from shared.devices import resolve_device, seed_everything
from shared.fewshot import CosinePairTask, label_pairs, make_pair_collate, mean_pool
from shared.recipes import (
    CANDIDATES,
    RecipeChoice,
    choose_recipe,
    fit_chosen,
    fit_logistic_head,
    macro_f1,
)
from shared.training import TrainResult, fit

from .config import FinanceConfig
from .model import IGNORE, SentimentTask, make_collate
from .training import fit_sentiment, predict_probs

log = logging.getLogger(__name__)

Rows = list[tuple[str, int, int]]


@torch.inference_mode()
def body_features(body: torch.nn.Module, collate, rows: Rows, batch_size: int = 64) -> np.ndarray:
    """(N, H) mean-pooled body vectors of `rows`, without dropout: what the heads see."""
    device = next(body.parameters()).device
    was_training = body.training
    body.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start : start + batch_size])
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state
        out.append(mean_pool(hidden, mask).float().cpu().numpy())
    body.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, body.config.hidden_size), np.float32)


def fit_heads(task: SentimentTask, features: np.ndarray, rows: Rows, seed: int) -> None:
    """Sets the sentiment head (and the topic head, on rows with a topic) by logistic regression."""
    labels = np.array([r[1] for r in rows])
    _copy_into(task.head, *fit_logistic_head(features, labels, task.head.out_features, seed))
    if task.topic_head is not None:
        topics = np.array([r[2] for r in rows])
        known = topics != IGNORE
        if known.any():
            weight, bias = fit_logistic_head(
                features[known], topics[known], task.topic_head.out_features, seed
            )
            _copy_into(task.topic_head, weight, bias)


def _copy_into(linear: torch.nn.Linear, weight: np.ndarray, bias: np.ndarray) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))


def tune_contrastive(cfg: FinanceConfig, body, tokenizer, rows: Rows, run_dir: Path):
    """Tunes `body` on `cfg.fewshot.pairs` label pairs through the shared loop (None: no pairs)."""
    pairs = label_pairs(np.array([r[1] for r in rows]), cfg.fewshot.pairs, cfg.trainer.seed)
    if not pairs:
        return None
    data = [(rows[i][0], rows[j][0], target) for i, j, target in pairs]
    shot = cfg.fewshot
    trainer = cfg.trainer.model_copy(
        update={
            "epochs": shot.epochs,
            "lr": shot.lr,
            "backbone_lr": shot.lr,
            "batch_size": shot.batch_size,
            "freeze_backbone_epochs": 0,
            "monitor": None,
            "monitor_mode": None,
            "early_stopping_patience": None,
            "resume": False,
        }
    )
    collate = make_pair_collate(tokenizer, cfg.text.max_length)
    return fit(CosinePairTask(body), data, collate, trainer, run_dir)


def fit_recipe(
    recipe: str, cfg: FinanceConfig, train_rows: Rows, val_rows: Rows, n_topics: int, run_dir: Path
) -> tuple[SentimentTask, object, object, TrainResult | None]:
    """Fits one recipe; returns (task, tokenizer, collate, TrainResult or None), as `fit_sentiment`.

    `val_rows` pick the best epoch of `finetune`; `frozen` and `fewshot` do not use them. The
    TrainResult of `fewshot` is its contrastive run's; `frozen` runs no loop (None).
    """
    if recipe == "finetune":
        return fit_sentiment(cfg, train_rows, val_rows, n_topics, run_dir)
    from shared.models import load_model

    tokenizer, body = load_model(cfg.model, "text-backbone")
    result = (
        tune_contrastive(cfg, body, tokenizer, train_rows, run_dir) if recipe == "fewshot" else None
    )
    task = SentimentTask(body, len(cfg.labels), n_topics, cfg.topic_loss_weight)
    task.to(resolve_device(cfg.trainer.device))
    collate = make_collate(tokenizer, cfg.text.max_length)
    fit_heads(task, body_features(task.backbone, collate, train_rows), train_rows, cfg.trainer.seed)
    return task.eval(), tokenizer, collate, result


def fit_by_recipe(
    cfg: FinanceConfig, train_rows: Rows, val_rows: Rows, n_topics: int, run_dir: Path
) -> tuple[SentimentTask, object, object, TrainResult | None, RecipeChoice]:
    """`cfg.recipe`'s model, or `auto`'s choice, and the record (`shared.recipes.fit_chosen`).

    With `cfg.adapter` the recipe is `finetune` through LoRA: `auto` weighs no recipe then,
    since an adapter is asked for its size (one base shared by many), not for its score.
    """
    recipe = "finetune" if cfg.adapter is not None else cfg.recipe
    fitted, choice = fit_chosen(
        recipe,
        lambda recipe: fit_recipe(recipe, cfg, train_rows, val_rows, n_topics, run_dir),
        lambda: choose(cfg, train_rows, val_rows, n_topics, run_dir),
        train_rows=len(train_rows),
        val_rows=len(val_rows),
        seed=cfg.trainer.seed,
    )
    if cfg.adapter is not None:
        choice.reason = f"adapter.method={cfg.adapter.method}: fine-tuned through the adapter"
    return (*fitted, choice)


def choose(cfg: FinanceConfig, train_rows: Rows, val_rows: Rows, n_topics: int, run_dir: Path):
    """`auto`'s `RecipeChoice`, and the winner's fitted model when it was scored on validation.

    Scored on validation, each loop-trained candidate logs under `run_dir/<recipe>`.
    """
    pool = train_rows + val_rows
    labels = np.array([r[1] for r in pool])
    n_train = len(train_rows)
    skipped = {}
    if n_train > cfg.fewshot.auto_max_train_rows:
        skipped["fewshot"] = (
            f"{n_train} training rows > fewshot.auto_max_train_rows "
            f"({cfg.fewshot.auto_max_train_rows}): fine-tuning has data enough"
        )
    fitted: dict[str, tuple] = {}
    base: dict[str, np.ndarray] = {}

    def score_frozen(fit_idx: np.ndarray, eval_idx: np.ndarray) -> float:
        if "features" not in base:  # the frozen body is the same on every fold: encode once
            from shared.models import load_model

            tokenizer, body = load_model(cfg.model, "text-backbone")
            collate = make_collate(tokenizer, cfg.text.max_length)
            body.to(resolve_device(cfg.trainer.device))
            base["features"] = body_features(body, collate, pool)
        x = base["features"]
        weight, bias = fit_logistic_head(
            x[fit_idx], labels[fit_idx], len(cfg.labels), cfg.trainer.seed
        )
        return macro_f1(labels[eval_idx], (x[eval_idx] @ weight.T + bias).argmax(1))

    def scorer(recipe: str):
        def score(fit_idx: np.ndarray, eval_idx: np.ndarray) -> float:
            on_val = bool(len(eval_idx)) and int(eval_idx.min()) >= n_train
            seed_everything(cfg.trainer.seed)
            with tempfile.TemporaryDirectory() as scratch:  # CV folds keep no run logs
                task, tokenizer, collate, result = fit_recipe(
                    recipe,
                    cfg,
                    [pool[i] for i in fit_idx],
                    val_rows if on_val else [],
                    n_topics,
                    run_dir / recipe if on_val else Path(scratch),
                )
            eval_rows = [pool[i] for i in eval_idx]
            task.eval()
            with torch.inference_mode():
                probs, _ = predict_probs(task, collate, eval_rows)
            if on_val:
                fitted[recipe] = (task, tokenizer, collate, result)
            return macro_f1(labels[eval_idx], probs.argmax(1))

        return score

    candidates = {
        name: score_frozen if name == "frozen" else scorer(name)
        for name in CANDIDATES
        if name not in skipped
    }
    choice = choose_recipe(
        candidates,
        labels,
        np.arange(n_train),
        np.arange(n_train, len(pool)),
        n_classes=len(cfg.labels),
        folds=cfg.recipe_folds,
        seed=cfg.trainer.seed,
        skipped=skipped,
    )
    return choice, fitted.get(choice.recipe)
