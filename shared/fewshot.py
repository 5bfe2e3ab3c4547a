"""SetFit-style contrastive tuning of a text body, as a task for the shared loop.

`label_pairs` draws pairs of training rows from their labels (same label: target 1, different:
0); `CosinePairTask` mean-pools the body's token states for both texts and returns the
cosine-similarity loss, `mse(cos(a, b), target)` (sentence-transformers' `CosineSimilarityLoss`,
SetFit's default), so `shared.training.fit` tunes the body like any other task.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def label_pairs(labels: np.ndarray, n_pairs: int, seed: int = 0) -> list[tuple[int, int, float]]:
    """`n_pairs` row pairs `(i, j, target)`, alternately positive (1.0) and negative (0.0).

    Anchors are drawn uniformly; a positive partner is another row of the anchor's class, a
    negative one a row of another class. Classes with a single row give no positives, and with a
    single class there are no negatives: those pairs are drawn from what exists.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    can_pos = np.flatnonzero([len(by_class[c]) > 1 for c in labels])
    can_neg = np.arange(len(labels)) if len(by_class) > 1 else np.zeros(0, int)
    pairs: list[tuple[int, int, float]] = []
    for k in range(n_pairs):
        positive = (k % 2 == 0 and len(can_pos) > 0) or len(can_neg) == 0
        if positive and not len(can_pos):
            break  # one row per class and one class: nothing to pair
        i = int(rng.choice(can_pos if positive else can_neg))
        if positive:
            same = by_class[labels[i]]
            j = int(rng.choice(same[same != i]))
        else:
            j = int(rng.choice(np.flatnonzero(labels != labels[i])))
        pairs.append((i, j, 1.0 if positive else 0.0))
    return pairs


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, H) mean of (B, T, H) token states over the real tokens (not L2-normalised)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class CosinePairTask(nn.Module):
    """A text body trained so that the cosine of two texts' pooled vectors meets the target.

    Batch keys: `input_ids_a`, `attention_mask_a`, `input_ids_b`, `attention_mask_b` (B, T) and
    `target` (B,). `backbone` is the body itself, so the loop's backbone settings apply to it.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, H) mean-pooled vectors."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(hidden.last_hidden_state, attention_mask)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        a = self.embed(batch["input_ids_a"], batch["attention_mask_a"])
        b = self.embed(batch["input_ids_b"], batch["attention_mask_b"])
        cosine = nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)
        return {"loss": nn.functional.mse_loss(cosine, batch["target"].float()), "cosine": cosine}


def make_pair_collate(tokenizer, max_length: int):
    """Collate for `(text_a, text_b, target)` tuples into a `CosinePairTask` batch."""

    def collate(rows: list[tuple[str, str, float]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {"target": torch.tensor([r[2] for r in rows])}
        for side, column in (("a", 0), ("b", 1)):
            enc = tokenizer(
                [r[column] for r in rows],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            batch[f"input_ids_{side}"] = enc["input_ids"]
            batch[f"attention_mask_{side}"] = enc["attention_mask"]
        return batch

    return collate
