"""`verticals evaluate recommender`: the leave-last-out report of a served artifact on a dataset.

Each user's last first-contact is held out; every item of the artifact's index is a candidate
(the user's earlier items excluded), ranked by retrieval alone and by retrieval + ranker, as in
training (`recommender.pipeline.evaluate_model`, whose figures these are). The report holds the
metrics with what each counts, Recall and NDCG at several K as a plot, and the users whose
held-out item the served order missed in its top 10.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import DataError
from shared.evaluation import retrieval_metrics
from shared.reports import EvaluationReport, plot_at_k

from .data import collapse, load_dataset
from .pipeline import EvalSet, eval_set, user_vectors
from .ranked_lists import RankedLists, rank_lists
from .ranker import ItemStats
from .split import leave_last_out

KS = (1, 5, 10, 20, 50)
"""The cut-offs of the at-K plot (those below the catalogue size)."""
LEGEND = {"retrieval": "retrieval (two towers)", "ranked": "ranked (as served)"}
"""How the plots name each stage."""
MISS_K = 10
"""A user is an error when the held-out item is not in the served top `MISS_K`."""


def evaluate_runtime(runtime: Any, data_path: Path) -> EvaluationReport:
    """Holds out each user's last item of `data_path` and ranks all indexed items for it.

    Items of the dataset must be in the runtime's index (add them first with POST /items).

    Raises:
        DataError: naming the items missing from the index, or when no user can be held out.
    """
    cfg = runtime.cfg
    ds = load_dataset(Path(data_path), cfg.event_weights, cfg.on_unknown_items)
    row_of = runtime.index.row_of
    missing = sorted(set(ds.items["item_id"]) - set(row_of))
    if missing:
        raise DataError(
            f"{data_path}: {len(missing)} item(s) are not in the artifact's index, e.g. {missing[:5]}"
        )
    split = leave_last_out(collapse(ds.interactions))
    history = pd.concat([split.train, split.val], ignore_index=True)
    es = eval_set(history, split.test, row_of, cfg.max_history)
    if not len(es.targets):
        raise DataError(f"{data_path}: no user has two or more interactions to hold one out")
    emb = runtime.index.emb
    records = runtime.catalogue.records
    stats = ItemStats.compute(
        [r["item_id"] for r in records],
        [r.get("category") or "" for r in records],
        pd.Series([r.get("created_at") for r in records]),
        history,
        history["ts"].max(),
        cfg.trending_days,
    )
    lists = rank_lists(
        user_vectors(runtime.tower, emb, es, cfg.max_history),
        emb,
        es,
        runtime.ranker,
        stats,
        cfg.candidates,
        cfg.extra_candidates,
    )
    return build_report(lists, es, runtime.index.ids, runtime.catalogue.titles)


def build_report(
    lists: dict[str, RankedLists], es: EvalSet, ids: list[str], titles: list[str] | None = None
) -> EvaluationReport:
    """The report from the ranked lists of each stage (`retrieval`, and `ranked` with a ranker).

    The last stage is the order the service serves; its misses in the top 10 are the errors.
    `titles` (by row, like `ids`) name the items in `errors.csv`.
    """
    n_items = len(ids)
    ks = tuple(k for k in KS if k < n_items) or (1,)
    metrics: dict[str, float | int] = {"n_users": len(es.targets), "n_items": n_items}
    curves: dict[str, dict[str, dict[int, float]]] = {"recall": {}, "ndcg": {}}
    for stage, ranked in lists.items():
        figures = retrieval_metrics(ranked.ranks, ks=sorted({*ks, MISS_K}))
        metrics |= {f"{stage}_{k}": v for k, v in figures.items()}
        metrics[f"{stage}_coverage"] = ranked.coverage
        for name, lines in curves.items():
            lines[LEGEND.get(stage, stage)] = {k: figures[f"{name}_at_{k}"] for k in ks}
    served = list(lists)[-1]
    metrics["n_misses"] = int((lists[served].ranks > MISS_K).sum())
    setting = f"leave-last-out, {len(es.targets)} users, {n_items} items"
    return EvaluationReport(
        metrics=metrics,
        descriptions=_descriptions(list(lists), ks, served),
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
    """Users whose held-out item is not in the served top 10, the worst ranked first.

    `predicted` lists the top 3 ids (space-separated) and `confidence` is the top item's score.
    """
    rows = []
    for i in np.argsort(-ranked.ranks, kind="stable"):
        if ranked.ranks[i] <= MISS_K:
            break
        rows.append(
            {
                "input": es.users[i],
                "expected": ids[es.targets[i]],
                "predicted": " ".join(ids[r] for r in ranked.top_rows[i] if r >= 0),
                "confidence": round(float(ranked.top_scores[i, 0]), 4),
                "rank": int(ranked.ranks[i]),
                "history_length": len(es.hist_rows[i]),
            }
        )
        if titles is not None:
            top = [titles[r] for r in ranked.top_rows[i] if r >= 0]
            rows[-1] |= {
                "expected_title": titles[es.targets[i]],
                "predicted_titles": " | ".join(top),
            }
    return rows


def _descriptions(stages: list[str], ks: tuple[int, ...], served: str) -> dict[str, str]:
    """What each figure counts, under the leave-last-out protocol."""
    order = {
        "retrieval": "by the two towers' score alone",
        "ranked": "by the ranker over the candidates (top retrieved + co-interaction + "
        "popular), the other items behind them in retrieval order",
    }
    out = {
        "n_users": "users evaluated: each user's last first-contact is held out "
        "(leave-last-out); users with a single interaction are not evaluated",
        "n_items": "candidates: every item in the artifact's index; each user's earlier items "
        "are excluded, and ties count against the held-out item",
        "n_misses": f"users whose held-out item is not in the served ({served}) top "
        f"{MISS_K}; listed in errors.csv",
    }
    for stage in stages:
        how = order.get(stage, stage)
        out[f"{stage}_mrr"] = f"mean 1/rank of the held-out item, items ordered {how}"
        for k in sorted({*ks, MISS_K}):
            out[f"{stage}_recall_at_{k}"] = (
                f"share of users whose held-out item is in the {stage} top {k}"
            )
            out[f"{stage}_ndcg_at_{k}"] = f"NDCG@{k} of the {stage} order (one relevant item)"
        out[f"{stage}_coverage"] = f"share of the catalogue in some user's {stage} top 10"
    return out
