"""Recipe choice: frozen head, few-shot contrastive or full fine-tune, chosen by the data.

A vertical supplies one scoring function per candidate recipe, `score(train_idx, eval_idx)`:
fit the recipe on the rows `train_idx` of its row pool and return the macro-F1 on `eval_idx`.
`choose_recipe` calls them on the validation split, or, when validation is too small to tell
recipes apart (`small_validation`), by stratified k-fold cross-validation on the training rows,
and returns a `RecipeChoice` that records why (it goes into the manifest under `MANIFEST_KEY`).
`fit_logistic_head` is the head of the `frozen` and `fewshot` recipes: a logistic regression on
fixed features whose coefficients become a `torch.nn.Linear` head, so artifacts keep one format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import Field

from shared.config import StrictModel

log = logging.getLogger(__name__)

Recipe = Literal["auto", "frozen", "fewshot", "finetune"]
CANDIDATES: tuple[str, ...] = ("frozen", "fewshot", "finetune")
"""The recipes `auto` weighs, cheapest first (a tie goes to the cheaper one)."""
MANIFEST_KEY = "recipe"
"""The manifest key of `RecipeChoice.as_dict()`."""
T = TypeVar("T")
Candidate = Callable[[np.ndarray, np.ndarray], float]
"""`score(train_idx, eval_idx)`: fits on the pool rows `train_idx`, returns macro-F1 on `eval_idx`."""
MISSING_CLASS_BIAS = -30.0
"""Bias of a head row whose class has no training rows: it is never predicted."""


class FewShotConfig(StrictModel):
    """The `fewshot` recipe: SetFit-style contrastive tuning of the body, then a logistic head.

    Pairs are drawn from the training labels, half positive (same label, target cosine 1) and
    half negative (different labels, target 0), and the body is tuned with the cosine-similarity
    loss (as SetFit's default, sentence-transformers' `CosineSimilarityLoss`).
    """

    pairs: int = Field(400, ge=2)
    """Label pairs drawn in all (bounds the cost: each pair is two texts per step)."""
    epochs: int = Field(1, ge=1)
    """Passes over the pairs."""
    lr: float = 2e-5
    """Learning rate of the body during contrastive tuning (SetFit's default)."""
    batch_size: int = 16
    """Pairs per optimizer step."""
    auto_max_train_rows: int = 2000
    """`auto` skips `fewshot` above this many training rows (fine-tuning has data enough)."""


@dataclass
class RecipeChoice:
    """Which recipe trained the model, how it was chosen, and every candidate's score.

    `method` is `validation` (scored on the validation split), `cv` (stratified `folds`-fold
    cross-validation on the training rows), `fixed` (set in the config), or `fallback` (too
    few rows to score; `reason` says why). Scores are macro-F1 (means over folds for `cv`).
    """

    recipe: str
    method: Literal["validation", "cv", "fixed", "fallback"]
    scores: dict[str, float] = field(default_factory=dict)
    fold_scores: dict[str, list[float]] = field(default_factory=dict)
    folds: int | None = None
    train_rows: int = 0
    val_rows: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    metric: str = "macro_f1"

    def as_dict(self) -> dict[str, Any]:
        """The manifest form (plain JSON types)."""
        return asdict(self)

    def summary(self) -> str:
        """One line for the training log."""
        scores = ", ".join(f"{k} {v:.4f}" for k, v in self.scores.items()) or "none"
        how = f"{self.folds}-fold CV" if self.method == "cv" else self.method
        skipped = "".join(f"; skipped {k}: {v}" for k, v in self.skipped.items())
        return f"recipe {self.recipe} by {how} ({self.metric}: {scores}){skipped}. {self.reason}"


def small_validation(counts: Sequence[int], min_per_class: int = 30, min_total: int = 200) -> bool:
    """Whether a validation split is too small to choose a recipe on.

    Args:
        counts: Validation rows per class, one entry per class of the head (zeros included).
        min_per_class: Fewer rows than this in any class is small.
        min_total: Fewer rows than this in all is small.
    """
    counts = [int(c) for c in counts]
    return sum(counts) < min_total or min(counts, default=0) < min_per_class


def choose_recipe(
    candidates: Mapping[str, Candidate],
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    n_classes: int,
    folds: int = 5,
    seed: int = 0,
    skipped: Mapping[str, str] | None = None,
    ceiling: float = 1.0,
    max_cv_rows: int | None = None,
    metric: str = "macro_f1",
) -> RecipeChoice:
    """Scores each candidate and returns the best, by validation or by k-fold CV.

    Validation decides when it holds enough rows (see `small_validation`); else stratified
    `folds`-fold CV on the training rows (fewer folds when a class has fewer rows than that).
    With neither possible, the first candidate is taken (`method="fallback"`). Ties go to the
    earlier candidate, so once one scores `ceiling` (the metric's best) the later ones are not
    run, and are recorded in `skipped`.

    Args:
        candidates: Name -> `score(train_idx, eval_idx)`, in order of preference.
        labels: (N,) class ids of the whole row pool (training and validation rows).
        train_idx: Pool positions of the training rows.
        val_idx: Pool positions of the validation rows (may be empty).
        n_classes: Classes of the head (for the per-class validation counts).
        folds: k of the cross-validation.
        seed: Seed of the fold assignment.
        skipped: Recipes left out before scoring, name -> why (recorded as given).
        ceiling: The best score the metric can reach.
        max_cv_rows: Above this many training rows validation decides even when small (k
            fits of every candidate would cost more than the choice is worth); None: no cap.
        metric: Name of what the candidates return (recorded).
    """
    labels = np.asarray(labels)
    train_idx, val_idx = np.asarray(train_idx, dtype=int), np.asarray(val_idx, dtype=int)
    choice = RecipeChoice(
        recipe=next(iter(candidates)),
        method="fallback",
        train_rows=len(train_idx),
        val_rows=len(val_idx),
        skipped=dict(skipped or {}),
        metric=metric,
    )
    splits = _plan(choice, labels, train_idx, val_idx, n_classes, folds, seed, max_cv_rows)
    if not splits:
        log.warning("recipe: %s; using %s", choice.reason, choice.recipe)
        return choice
    for name, score in candidates.items():
        _score_candidate(choice, name, score, splits, ceiling)
    best = max(choice.scores.values())
    choice.recipe = next(n for n, s in choice.scores.items() if s == best)
    return choice


def _score_candidate(
    choice: RecipeChoice,
    name: str,
    score: Candidate,
    splits: list[tuple[np.ndarray, np.ndarray]],
    ceiling: float,
) -> None:
    """Scores `name` on every split into `choice`, or records it as skipped once a candidate
    already reached `ceiling` (ties go to the earlier one)."""
    if choice.scores and max(choice.scores.values()) >= ceiling:
        best = max(choice.scores, key=choice.scores.get)
        choice.skipped[name] = f"{best} already scored {ceiling} (the maximum; ties go to it)"
        return
    started = time.perf_counter()
    fold_scores = [float(score(fit_idx, eval_idx)) for fit_idx, eval_idx in splits]
    choice.seconds[name] = round(time.perf_counter() - started, 2)
    choice.fold_scores[name] = fold_scores
    choice.scores[name] = float(np.mean(fold_scores))
    log.info("recipe %s: %s %.4f (%s)", name, choice.metric, choice.scores[name], choice.method)


def _plan(
    choice: RecipeChoice,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    n_classes: int,
    folds: int,
    seed: int,
    max_cv_rows: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (fit, eval) index pairs to score on; sets `choice.method`, `folds` and `reason`."""
    from sklearn.model_selection import StratifiedKFold

    val_counts = np.bincount(labels[val_idx], minlength=n_classes)
    train_counts = np.bincount(labels[train_idx]) if len(train_idx) else np.zeros(0, int)
    present = train_counts[train_counts > 0]
    k = int(min(folds, present.min())) if len(present) > 1 else 0
    too_many = max_cv_rows is not None and len(train_idx) > max_cv_rows
    if small_validation(val_counts) and k >= 2 and not (too_many and len(val_idx)):
        choice.method, choice.folds = "cv", k
        per_class = (
            f"per class {list(map(int, val_counts))}"
            if len(val_counts) <= 10
            else f"{len(val_counts)} classes, fewest {int(val_counts.min())}"
        )
        choice.reason = (
            f"validation has {len(val_idx)} rows ({per_class}), under 30 per class or 200 "
            f"in all, so {k}-fold CV on {len(train_idx)} training rows"
        )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return [
            (train_idx[a], train_idx[b]) for a, b in splitter.split(train_idx, labels[train_idx])
        ]
    if len(val_idx):
        choice.method = "validation"
        choice.reason = f"scored on the {len(val_idx)} validation rows"
        if small_validation(val_counts):
            why = (
                f"over {max_cv_rows} training rows, too many to cross-validate every recipe"
                if too_many
                else "the training rows are too few to cross-validate"
            )
            choice.reason += f" (small, but {why})"
        return [(train_idx, val_idx)]
    choice.reason = "no validation rows and too few training rows per class to cross-validate"
    return []


def fit_chosen(
    recipe: str,
    fit: Callable[[str], T],
    choose: Callable[[], tuple[RecipeChoice, T | None]],
    *,
    train_rows: int,
    val_rows: int,
    seed: int = 0,
) -> tuple[T, RecipeChoice]:
    """The model of `recipe`, or of `auto`'s choice, and the record of how it was chosen.

    A fixed recipe is fitted as set. For `auto`, `choose()` scores the candidates and returns
    the choice with the winner's model when scoring left one fit on all the training rows
    (scored on validation); otherwise (after CV) the winner is refitted on them.

    Args:
        recipe: `auto` or a candidate name (the config's `recipe`).
        fit: Fits one recipe on all the training rows.
        choose: `auto`'s scoring, e.g. a closure over `choose_recipe`.
        train_rows: Training rows (recorded for a fixed recipe).
        val_rows: Validation rows (recorded for a fixed recipe).
        seed: Reseeds before a refit, so it matches a fixed run of that recipe.
    """
    from shared.devices import seed_everything

    if recipe != "auto":
        choice = RecipeChoice(
            recipe, "fixed", train_rows=train_rows, val_rows=val_rows, reason="set in the config"
        )
        return fit(recipe), choice
    choice, kept = choose()
    log.info("%s", choice.summary())
    if kept is None:
        seed_everything(seed)
        kept = fit(choice.recipe)
    return kept, choice


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-F1 over the classes present in `y_true` or `y_pred` (scikit-learn's)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def fit_logistic_head(
    features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int = 0, folds: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression on `features`, as the weights of a linear head.

    Features are standardised for the fit and the scaling is folded back into the weights, so
    `features @ weight.T + bias` gives the model's logits on the raw features. `C` is chosen by
    stratified CV (log-loss) on these rows; with fewer than two rows in a class, `C=1`.

    Args:
        features: (N, D) fixed features, e.g. a frozen encoder's pooled vectors.
        labels: (N,) class ids in `[0, n_classes)`.
        n_classes: Rows of the head; a class without rows gets bias `MISSING_CLASS_BIAS`.
        seed: Seed of the CV folds.
        folds: Most folds of the CV that picks `C`.

    Returns:
        weight (n_classes, D) and bias (n_classes,), float32.
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    x, y = np.asarray(features, dtype=np.float64), np.asarray(labels)
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, MISSING_CLASS_BIAS)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) == 1:
        bias[classes[0]] = 0.0
        return weight.astype(np.float32), bias.astype(np.float32)
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    if counts.min() >= 2:
        cv = StratifiedKFold(int(min(folds, counts.min())), shuffle=True, random_state=seed)
        model = LogisticRegressionCV(
            Cs=np.logspace(-3, 2, 8).tolist(),
            l1_ratios=(0.0,),  # plain L2, stated (scikit-learn 1.10 changes the default)
            use_legacy_attributes=False,
            cv=cv,
            scoring="neg_log_loss",
            max_iter=2000,
        )
    else:
        model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(z, y)
    coef, intercept = model.coef_, model.intercept_
    if len(classes) == 2:  # scikit-learn keeps one row: sigmoid(w x + b) = softmax([0, w x + b])
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    coef = coef / scaler.scale_  # logits on raw x: w (x - mu) / s + b
    intercept = intercept - coef @ scaler.mean_
    weight[classes], bias[classes] = coef, intercept
    return weight.astype(np.float32), bias.astype(np.float32)
