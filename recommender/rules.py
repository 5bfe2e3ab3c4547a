"""Business rules after ranking: exclude seen items, category filters, diversity, fresh-item slots."""

from __future__ import annotations

import numpy as np

from .schemas import RulesConfig


def allowed(
    rows: np.ndarray,
    categories: np.ndarray,
    seen: set[int],
    cfg: RulesConfig,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
) -> np.ndarray:
    """Boolean mask of candidate rows that pass the seen and category filters."""
    include = list(include if include is not None else cfg.include_categories)
    exclude = list(exclude if exclude is not None else cfg.exclude_categories)
    keep = rows >= 0
    if cfg.exclude_seen and seen:
        keep &= ~np.isin(rows, np.fromiter(seen, dtype=np.int64))
    cats = categories[np.clip(rows, 0, None)]
    if include:
        keep &= np.isin(cats, include)
    if exclude:
        keep &= ~np.isin(cats, exclude)
    return keep


def diversify(
    rows: np.ndarray,
    scores: np.ndarray,
    categories: np.ndarray,
    emb: np.ndarray,
    k: int,
    cfg: RulesConfig,
) -> list[int]:
    """Picks `k` of the ranked `rows` (best first) under the configured diversity rule.

    `category_cap` allows at most `category_cap` items per category (relaxed if too few remain);
    `mmr` is maximal marginal relevance with `mmr_lambda` trading relevance for novelty.
    """
    rows = list(rows)
    if cfg.diversity == "category_cap":
        picked, count, skipped = [], {}, []
        for row in rows:
            cat = categories[row]
            if count.get(cat, 0) < cfg.category_cap:
                picked.append(row)
                count[cat] = count.get(cat, 0) + 1
            else:
                skipped.append(row)
            if len(picked) == k:
                return picked
        return picked + skipped[: k - len(picked)]
    if cfg.diversity == "mmr" and len(rows) > 1:
        rel = np.asarray(scores, dtype=np.float64)
        rel = (rel - rel.min()) / (np.ptp(rel) + 1e-9)
        vecs = emb[rows]
        picked_idx: list[int] = []
        max_sim = np.full(len(rows), -1.0)
        for _ in range(min(k, len(rows))):
            value = cfg.mmr_lambda * rel - (1 - cfg.mmr_lambda) * np.maximum(max_sim, 0)
            value[picked_idx] = -np.inf
            best = int(np.argmax(value))
            picked_idx.append(best)
            max_sim = np.maximum(max_sim, vecs @ vecs[best])
        return [rows[i] for i in picked_idx]
    return rows[:k]


def fresh_slot(
    picked: list[int], candidates: np.ndarray, popularity: np.ndarray, k: int, cfg: RulesConfig
) -> tuple[list[int], int | None]:
    """Reserves the last of `fresh_slots` places for the best-retrieved cold item, if any.

    A cold item (at most `fresh_max_interactions` users) must be among the top `3k` retrieved
    candidates to qualify, so it still matches the user's taste. Returns the list and the item.
    """
    if cfg.fresh_slots <= 0 or k < 2:
        return picked, None
    in_list = set(picked)
    cold_in_list = sum(popularity[r] <= cfg.fresh_max_interactions for r in picked)
    if cold_in_list >= cfg.fresh_slots:
        return picked, None
    for row in candidates[: 3 * k]:
        if row >= 0 and row not in in_list and popularity[row] <= cfg.fresh_max_interactions:
            out = picked[: k - 1] + [int(row)] if len(picked) >= k else picked + [int(row)]
            return out, int(row)
    return picked, None
