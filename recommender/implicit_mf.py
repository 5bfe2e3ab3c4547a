"""ALS and BPR matrix factorisation from the `implicit` library, tuned on validation.

`split_baselines` fits every baseline (MostPopular, ItemKNN, ALS, BPR) on the same `Split` the
pipeline trains on, and scores them with the same full-ranking metrics: the hyperparameters of
ALS and BPR are chosen on validation (fitted on training alone, scored on `split.val`), then
the chosen setting is refitted on training plus validation and scored once on `split.test`.
The test set never takes part in the choice.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .baselines import ItemKNN, MostPopular, interaction_matrix
from .metrics import cold_rows, evaluate_scorer, held_out_mask, subset_metrics
from .pipeline import EvalSet, eval_set
from .split import Split, histories

log = logging.getLogger(__name__)

GRIDS: dict[str, dict[str, Sequence[Any]]] = {
    # ALS reads the 0/1 matrix as confidence 1 + alpha: alpha 1 underfits sparse data badly
    "als": {
        "factors": (16, 32, 64),
        "regularization": (0.01, 0.1),
        "alpha": (10.0, 40.0),
        "iterations": (15,),
    },
    "bpr": {"factors": (32, 64, 128), "regularization": (0.001, 0.01), "iterations": (50, 100)},
}
"""The small grids searched on validation (every combination)."""
TUNE_METRIC = "ndcg_at_10"
"""The validation metric that picks a setting."""


@dataclass
class Tuned:
    """A factorisation model's chosen setting and every setting's validation score."""

    kind: str
    params: dict[str, Any]
    val_scores: list[dict[str, Any]] = field(default_factory=list)


def fit_implicit(
    kind: str, user_items: sp.csr_matrix, params: Mapping[str, Any], seed: int = 0, threads: int = 1
) -> Any:
    """Fits `implicit`'s CPU ALS (`kind="als"`) or BPR (`"bpr"`) on a (U, N) 0/1 matrix."""
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking

    cls = {"als": AlternatingLeastSquares, "bpr": BayesianPersonalizedRanking}[kind]
    from threadpoolctl import threadpool_limits

    model = cls(**params, random_state=seed, num_threads=threads, use_gpu=False)
    with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS threads only slow it
        model.fit(user_items.astype(np.float32).tocsr(), show_progress=False)
    return model


def user_matrix(history: pd.DataFrame, es: EvalSet, row_of: dict[str, int], n_items: int):
    """(U + others, N) 0/1 matrix of `history`: the evaluation users' rows first, in order."""
    seqs = histories(history, row_of)
    mine = set(es.users)
    rows = list(es.hist_rows) + [s["items"] for u, s in seqs.items() if u not in mine]
    return interaction_matrix(rows, n_items)


def _score(model: Any, es: EvalSet, n_items: int, ks: Sequence[int]):
    return evaluate_scorer(
        lambda pos: model.user_factors[pos] @ model.item_factors.T,
        es.relevant,
        es.hist_rows,
        n_items,
        ks=ks,
    )


def tune(
    kind: str,
    train: sp.csr_matrix,
    val: EvalSet,
    n_items: int,
    grid: Mapping[str, Sequence[Any]] | None = None,
    seed: int = 0,
    threads: int = 1,
) -> Tuned:
    """Picks the setting of `grid` with the best validation `TUNE_METRIC`.

    Args:
        train: Training matrix whose first rows are the validation users (see `user_matrix`).
        val: The validation users and their held-out items.
    """
    grid = grid or GRIDS[kind]
    tuned = Tuned(kind, {})
    best = -np.inf
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        figures, _ = _score(fit_implicit(kind, train, params, seed, threads), val, n_items, (10,))
        tuned.val_scores.append({**params, TUNE_METRIC: figures[TUNE_METRIC]})
        if figures[TUNE_METRIC] > best:
            best, tuned.params = figures[TUNE_METRIC], params
    log.info("%s: chose %s (validation %s %.4f)", kind, tuned.params, TUNE_METRIC, best)
    return tuned


def split_baselines(
    split: Split,
    row_of: dict[str, int],
    n_items: int,
    max_history: int = 20,
    seed: int = 0,
    grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    ks: Sequence[int] = (10,),
    threads: int = 1,
) -> tuple[dict[str, dict[str, float]], dict[str, Tuned]]:
    """MostPopular, ItemKNN, ALS and BPR scored on `split.test`, ALS and BPR tuned on `split.val`.

    Every model sees training plus validation when scoring test (as the pipeline's model
    does); the cold held-out items (`metrics.COLD_MAX_TRAIN_USERS`) are reported with a `cold_`
    prefix. Without validation users the grids' first settings are used.

    Returns:
        Per baseline its test metrics, and per factorisation model how it was tuned.
    """
    grids = {**GRIDS, **(grids or {})}
    history = pd.concat([split.train, split.val], ignore_index=True)
    test = eval_set(history, split.test, row_of, max_history)
    val = eval_set(split.train, split.val, row_of, max_history)
    full = user_matrix(history, test, row_of, n_items)
    cold = held_out_mask(test.relevant, cold_rows(history, list(row_of)))
    tuned: dict[str, Tuned] = {}
    models: dict[str, Any] = {"most_popular": MostPopular(full), "item_knn": ItemKNN(full)}
    for kind in ("als", "bpr"):
        if len(val.targets):
            train = user_matrix(split.train, val, row_of, n_items)
            tuned[kind] = tune(kind, train, val, n_items, grids[kind], seed, threads)
        else:
            first = {k: v[0] for k, v in grids[kind].items()}
            tuned[kind] = Tuned(kind, first)
        models[kind] = fit_implicit(kind, full, tuned[kind].params, seed, threads)
    out = {}
    for name, model in models.items():
        if name in tuned:
            figures, ranks = _score(model, test, n_items, ks)
        else:
            figures, ranks = evaluate_scorer(
                lambda pos, m=model: m.scores([test.hist_rows[i] for i in pos]),
                test.relevant,
                test.hist_rows,
                n_items,
                ks=ks,
            )
        cold_figures = subset_metrics(ranks, cold, ks=ks)
        out[name] = figures | {f"cold_{k}": v for k, v in cold_figures.items()}
    return out, tuned
