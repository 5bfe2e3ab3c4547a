"""Two towers: a fine-tuned sentence-transformer for items, learned recency pooling for users.

Training is next-interaction prediction: a user's history (most recent first) is pooled into a
vector that must score the next item above the other items of the batch (in-batch negatives)
and above hard negatives drawn from the target's category, through `shared.training.fit`.
History embeddings come from a catalogue cache refreshed after every epoch, so a step only runs
the transformer (with gradients) on the batch's target and negative items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.models import embed_features


class UserTower(nn.Module):
    """Attention pooling over history embeddings, biased by recency and event weight.

    logits_i = pos_bias[i] + weight_coef * log(w_i) + <query, e_i>; the user vector is the
    normalised softmax-weighted sum. Position 0 is the most recent interaction.
    """

    def __init__(self, dim: int, max_history: int) -> None:
        super().__init__()
        self.pos_bias = nn.Parameter(-0.15 * torch.arange(max_history, dtype=torch.float32))
        self.weight_coef = nn.Parameter(torch.tensor(1.0))
        self.query = nn.Parameter(torch.zeros(dim))

    def forward(
        self, hist: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Pools (B, H, D) history embeddings with a (B, H) validity mask into (B, D) unit vectors."""
        h = hist.shape[1]
        logits = (
            self.pos_bias[:h]
            + self.weight_coef * torch.log(weights.clamp_min(1e-3))
            + hist @ self.query
        )
        logits = logits.masked_fill(~mask, -1e4)
        attn = torch.softmax(logits, dim=-1) * mask
        pooled = (attn.unsqueeze(-1) * hist).sum(1)
        return F.normalize(pooled, dim=-1)


class TwoTowerTask(nn.Module):
    """The training task: `forward(batch)` returns the in-batch softmax loss.

    Attributes:
        backbone: The item tower (a SentenceTransformer), so `fit` can give it its own lr.
        tower: The user tower.
        item_cache: (N, D) catalogue embeddings the histories are read from (not saved).
    """

    def __init__(
        self, encoder: nn.Module, tower: UserTower, n_items: int, dim: int, temperature: float
    ) -> None:
        super().__init__()
        self.backbone = encoder
        self.tower = tower
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.register_buffer("item_cache", torch.zeros(n_items, dim), persistent=False)

    def user_vectors(self, hist_idx: torch.Tensor, hist_w: torch.Tensor) -> torch.Tensor:
        mask = hist_idx >= 0
        hist = self.item_cache[hist_idx.clamp_min(0)]
        return self.tower(hist, mask, hist_w)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        users = self.user_vectors(batch["hist_idx"], batch["hist_w"])  # (B, D)
        cands = embed_features(self.backbone, batch["features"])  # (C, D): targets, negatives
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * users @ cands.T  # (B, C)
        cand_items = batch["cand_items"]
        target_col = batch["target_col"]
        # Another copy of the target, or an item already in the history, is no negative.
        same = cand_items.unsqueeze(0) == batch["target_item"].unsqueeze(1)
        seen = (cand_items.view(1, -1, 1) == batch["hist_idx"].unsqueeze(1)).any(-1)
        own = F.one_hot(target_col, num_classes=cands.shape[0]).bool()
        logits = logits.masked_fill((same | seen) & ~own, -1e4)
        return {"loss": F.cross_entropy(logits, target_col), "logits": logits}


def make_examples(
    seqs: dict[str, dict[str, np.ndarray]], max_history: int, min_history: int = 1
) -> list[tuple]:
    """Next-item examples from chronological sequences: (history idx, weights, target idx).

    Histories are reversed (most recent first) and cut to `max_history`.
    """
    examples = []
    for seq in seqs.values():
        items, weights = seq["items"], seq["weights"]
        for t in range(min_history, len(items)):
            lo = max(0, t - max_history)
            examples.append((items[lo:t][::-1].copy(), weights[lo:t][::-1].copy(), int(items[t])))
    return examples


def pad_histories(
    rows: Sequence[tuple[np.ndarray, np.ndarray]], max_history: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H) item indices (-1 padded) and weights from (items, weights) pairs, most recent first."""
    h = max(1, min(max_history, max((len(r[0]) for r in rows), default=1)))
    idx = torch.full((len(rows), h), -1, dtype=torch.long)
    w = torch.ones((len(rows), h), dtype=torch.float32)
    for i, (items, weights) in enumerate(rows):
        n = min(h, len(items))
        if n:
            idx[i, :n] = torch.as_tensor(np.asarray(items[:n], dtype=np.int64))
            w[i, :n] = torch.as_tensor(np.asarray(weights[:n], dtype=np.float32))
    return idx, w


def build_collate(
    tokenize: Callable[[list[str]], dict[str, Any]],
    texts: Sequence[str],
    categories: Sequence[str],
    max_history: int,
    hard_negatives: int,
    seed: int,
) -> Callable[[list[tuple]], dict[str, Any]]:
    """A collate function: pads histories, tokenizes unique targets plus same-category negatives."""
    rng = np.random.default_rng(seed)
    by_cat: dict[str, np.ndarray] = {}
    cats = np.asarray(categories, dtype=object)
    for cat in set(categories):
        by_cat[cat] = np.flatnonzero(cats == cat)

    def collate(rows: list[tuple]) -> dict[str, Any]:
        hist_idx, hist_w = pad_histories([(r[0], r[1]) for r in rows], max_history)
        targets = [r[2] for r in rows]
        cand = list(dict.fromkeys(targets))
        for r in rows:
            pool = by_cat.get(categories[r[2]], np.zeros(0, dtype=np.int64))
            for _ in range(hard_negatives if len(pool) > 1 else 0):
                neg = int(rng.choice(pool))
                if neg != r[2] and neg not in r[0] and neg not in cand:
                    cand.append(neg)
        col = {item: c for c, item in enumerate(cand)}
        return {
            "target_col": torch.tensor([col[t] for t in targets]),
            "target_item": torch.tensor(targets),
            "cand_items": torch.tensor(cand),
            "hist_idx": hist_idx,
            "hist_w": hist_w,
            "features": tokenize([texts[i] for i in cand]),
        }

    return collate


def pool_users(
    tower: UserTower,
    cache: np.ndarray,
    rows: Sequence[tuple[np.ndarray, np.ndarray]],
    max_history: int,
) -> np.ndarray:
    """(B, D) user vectors for histories given as (item indices, weights), most recent first.

    A user without history gets a zero vector (cold start is handled by the caller).
    """
    idx, w = pad_histories(rows, max_history)
    device = tower.query.device
    table = torch.as_tensor(cache, device=device)
    idx, w = idx.to(device), w.to(device)
    with torch.no_grad():
        users = tower(table[idx.clamp_min(0)], idx >= 0, w)
    return users.float().cpu().numpy()
