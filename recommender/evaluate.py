"""`verticals evaluate recommender`: the held-out report of a served artifact on a dataset.

The artifact's configured protocol (`split`: leave-last-out, a time cutoff or a random holdout
per user, with its fraction, seed and cutoff) holds items out of the dataset; every item of the
artifact's index is a candidate (the user's training items excluded), ranked by retrieval alone
and by retrieval + ranker, as in training (`recommender.pipeline.evaluate_model`, whose figures
these are). The report holds the metrics with what each counts (`recommender.metrics`), Recall
and NDCG at several K as a plot, the cold held-out items' figures, and the users none of whose
held-out items the served order put in its top 10.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import DataError
from shared.reports import EvaluationReport, plot_at_k

from .data import collapse, load_dataset
from .metrics import (
    COLD_MAX_TRAIN_USERS,
    cold_rows,
    held_out_mask,
    ranking_metrics,
    subset_metrics,
)
from .pipeline import EvalSet, eval_set, user_vectors
from .ranked_lists import RankedLists, rank_lists
from .ranker import ItemStats
from .split import make_split

KS = (1, 5, 10, 20, 50)
"""The cut-offs of the at-K plot (those below the catalogue size)."""
LEGEND = {"retrieval": "retrieval (two towers)", "ranked": "ranked (as served)"}
"""How the plots name each stage."""
MISS_K = 10
"""A user is an error when no held-out item is in the served top `MISS_K`."""


def evaluate_runtime(runtime: Any, data_path: Path) -> EvaluationReport:
    """Holds out items of `data_path` by the artifact's `split` and ranks all indexed items.

    Items of the dataset must be in the runtime's index (add them first with POST /items).

    Raises:
        DataError: naming the items missing from the index, or when no user can be held out.
    """
    cfg = runtime.cfg
    ds = load_dataset(Path(data_path), cfg.event_weights, cfg.on_unknown_items, cfg.columns)
    row_of = runtime.index.row_of
    missing = sorted(set(ds.items["item_id"]) - set(row_of))
    if missing:
        raise DataError(
            f"{data_path}: {len(missing)} item(s) are not in the artifact's index, e.g. {missing[:5]}"
        )
    split = make_split(cfg, collapse(ds.interactions))
    history = pd.concat([split.train, split.val], ignore_index=True)
    es = eval_set(history, split.test, row_of, cfg.max_history)
    if not len(es.targets):
        raise DataError(
            f"{data_path}: no user has both history and held-out items under {split.protocol}"
        )
    emb = runtime.index.emb
    stats = catalogue_stats(runtime, history)
    lists = rank_lists(
        user_vectors(runtime.tower, emb, es, cfg.max_history),
        emb,
        es,
        runtime.ranker,
        stats,
        cfg.candidates,
        cfg.extra_candidates,
    )
    cold = cold_rows(history, runtime.index.ids)
    return build_report(
        lists,
        es,
        runtime.index.ids,
        runtime.catalogue.titles,
        protocol=split.protocol,
        cold=held_out_mask(es.relevant, cold),
    )


def _best(ranks: np.ndarray) -> np.ndarray:
    """(U,) each user's best rank of a held-out item, from (U,) or (U, R) ranks."""
    return np.asarray(ranks, dtype=np.float64).reshape(len(ranks), -1).min(axis=1)


def build_report(
    lists: dict[str, RankedLists],
    es: EvalSet,
    ids: list[str],
    titles: list[str] | None = None,
    protocol: str = "leave-last-out: each user's last new item is test",
    cold: np.ndarray | None = None,
) -> EvaluationReport:
    """The report from the ranked lists of each stage (`retrieval`, and `ranked` with a ranker).

    The last stage is the order the service serves; its misses in the top 10 are the errors.
    `titles` (by row, like `ids`) name the items in `errors.csv`; `protocol` says what was held
    out; `cold` ((U, R), as `metrics.held_out_mask`) marks the cold held-out items.
    """
    n_items = len(ids)
    ks = tuple(k for k in KS if k < n_items) or (1,)
    metrics: dict[str, float | int] = {
        "n_users": len(es.targets),
        "n_held_out": int(sum(map(len, es.relevant))),
        "n_items": n_items,
    }
    curves: dict[str, dict[str, dict[int, float]]] = {"recall": {}, "ndcg": {}}
    for stage, ranked in lists.items():
        figures = ranking_metrics(ranked.ranks, ks=sorted({*ks, MISS_K}))
        metrics |= {f"{stage}_{k}": v for k, v in figures.items()}
        metrics[f"{stage}_coverage"] = ranked.coverage
        if cold is not None:
            sub = subset_metrics(ranked.ranks, cold, ks=(MISS_K,))
            metrics |= {f"cold_{stage}_{k}": v for k, v in sub.items()}
        for name, lines in curves.items():
            lines[LEGEND.get(stage, stage)] = {k: figures[f"{name}_at_{k}"] for k in ks}
    served = list(lists)[-1]
    metrics["n_misses"] = int((_best(lists[served].ranks) > MISS_K).sum())
    setting = f"{protocol.split(':')[0]}, {len(es.targets)} users, {n_items} items"
    return EvaluationReport(
        metrics=metrics,
        descriptions=_descriptions(list(lists), ks, served, protocol),
        errors=_misses(lists[served], es, ids, titles),
        plots={
            f"{name}_at_k": partial(plot_at_k, lines, title=f"{label} at K ({setting})")
            for (name, lines), label in zip(curves.items(), ("Recall", "NDCG"), strict=True)
        },
        primary=f"{served}_recall_at_{MISS_K}",
    )


def _misses(
    ranked: RankedLists, es: EvalSet, ids: list[str], titles: list[str] | None
) -> list[dict[str, Any]]:
    """Users none of whose held-out items is in the served top 10, the worst ranked first.

    `expected` lists the held-out ids (the first 5, space-separated), `predicted` the top 3 ids,
    `confidence` the top item's score and `rank` the best rank of a held-out item.
    """
    rows = []
    best = _best(ranked.ranks)
    for i in np.argsort(-best, kind="stable"):
        if best[i] <= MISS_K:
            break
        held = list(es.relevant[i][:5])
        rows.append(
            {
                "input": es.users[i],
                "expected": " ".join(ids[r] for r in held),
                "predicted": " ".join(ids[r] for r in ranked.top_rows[i] if r >= 0),
                "confidence": round(float(ranked.top_scores[i, 0]), 4),
                "rank": int(best[i]),
                "history_length": len(es.hist_rows[i]),
            }
        )
        if titles is not None:
            top = [titles[r] for r in ranked.top_rows[i] if r >= 0]
            rows[-1] |= {
                "expected_title": " | ".join(titles[r] for r in held),
                "predicted_titles": " | ".join(top),
            }
    return rows


def _descriptions(
    stages: list[str], ks: tuple[int, ...], served: str, protocol: str
) -> dict[str, str]:
    """What each figure counts, under the artifact's protocol (named in `n_users`)."""
    order = {
        "retrieval": "by the two towers' score alone",
        "ranked": "by the ranker over the candidates (top retrieved + co-interaction + "
        "popular), the other items behind them in retrieval order",
    }
    out = {
        "n_users": f"users evaluated, under the artifact's protocol ({protocol}); users "
        "without both history and held-out items are not evaluated",
        "n_held_out": "held-out (user, item) pairs: the relevant items, one or several per user",
        "n_items": "candidates: every item in the artifact's index; each user's training items "
        "are excluded, and ties count against the held-out items",
        "n_misses": f"users none of whose held-out items is in the served ({served}) top "
        f"{MISS_K}; listed in errors.csv",
    }
    for stage in stages:
        how = order.get(stage, stage)
        out[f"{stage}_mrr"] = f"mean 1/rank of the best-ranked held-out item, ordered {how}"
        for k in sorted({*ks, MISS_K}):
            top = f"the {stage} top {k}"
            out[f"{stage}_precision_at_{k}"] = f"held-out items in {top}, divided by {k}"
            out[f"{stage}_recall_at_{k}"] = f"share of each user's held-out items in {top}"
            out[f"{stage}_hit_rate_at_{k}"] = f"share of users with a held-out item in {top}"
            out[f"{stage}_ndcg_at_{k}"] = (
                f"NDCG@{k} of the {stage} order, ideal DCG over min(held-out, {k}) items"
            )
            out[f"{stage}_map_at_{k}"] = (
                f"MAP@{k} of the {stage} order, normalised by min(held-out, {k})"
            )
        out[f"{stage}_coverage"] = f"share of the catalogue in some user's {stage} top 10"
        out[f"cold_{stage}_recall_at_{MISS_K}"] = (
            f"recall@{MISS_K} of the cold held-out items alone (at most "
            f"{COLD_MAX_TRAIN_USERS} users in the history), in the same {stage} order"
        )
    return out


def catalogue_stats(runtime: Any, history: pd.DataFrame) -> ItemStats:
    """The ranker's item features (popularity, trend, age) over the runtime's catalogue, as of
    the last interaction of `history`."""
    records = runtime.catalogue.records
    return ItemStats.compute(
        [r["item_id"] for r in records],
        [r.get("category") or "" for r in records],
        pd.Series([r.get("created_at") for r in records]),
        history,
        history["ts"].max(),
        runtime.cfg.trending_days,
    )
