"""The bi-encoder and its index: training task, embedding, and hybrid (dense + BM25) search.

Training: questions are pulled towards the text of the answer they resolve with in-batch
negatives (`MultipleNegativesRankingLoss`), and, when intents exist, an intent head on the same
question embedding learns with cross-entropy; one task, one pass through the shared loop.

Search: FAISS inner product over normalised embeddings of every answer and every known paraphrase
(a question seen in training); an answer scores as its best entry. BM25 (bm25s) scores are
normalised per query and added with a weight chosen on validation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from shared.models import embed_features, tokenize

# Normalised embeddings have small coordinates; the intent head reads them scaled by this.
INTENT_INPUT_SCALE = 10.0


def intent_logits(embeddings: Any, weight: Any, bias: Any) -> Any:
    """(N, C) intent logits of (N, D) normalised embeddings (or (C,) of one (D,) embedding).

    The one definition of the intent head, for torch tensors (training, with gradients) and
    numpy arrays (validation, calibration and serving alike).
    """
    return (embeddings * INTENT_INPUT_SCALE) @ weight.T + bias


def answer_text(title: str, answer: str) -> str:
    """The text an answer is embedded as: its title and body, template slots made readable."""
    body = answer.replace("{", "").replace("}", "").replace("_", " ")
    return f"{title}. {body}" if title else body


class BotTask(nn.Module):
    """Bi-encoder + optional intent head; `forward(batch)` returns the summed loss.

    Batch keys: `q` (tokenised questions, B), optionally `p` (tokenised positives, P <= B, unique
    per batch so that no in-batch negative is a false one) with `p_rows` (their question rows),
    and `y` (B intent ids, -100 where unknown).
    """

    def __init__(
        self, encoder: nn.Module, n_intents: int, scale: float = 20.0, intent_weight: float = 1.0
    ):
        super().__init__()
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

        self.backbone = encoder
        dim = encoder.get_embedding_dimension()
        self.head = nn.Linear(dim, n_intents) if n_intents > 1 else None
        self.mnrl = MultipleNegativesRankingLoss(encoder, scale=scale)
        self.intent_weight = intent_weight
        # Set when the encoder stays frozen: text -> embedding, so each text is encoded once.
        self.frozen_cache: dict[str, np.ndarray] | None = None

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        # q_emb: cached question embeddings of a frozen encoder (head-only training)
        q = batch["q_emb"] if "q_emb" in batch else embed_features(self.backbone, batch["q"])
        loss = q.new_zeros(())
        if "p" in batch and len(batch["p_rows"]) > 1:
            p = embed_features(self.backbone, batch["p"])
            loss = loss + self.mnrl.compute_loss_from_embeddings([q[batch["p_rows"]], p], None)
        out: dict[str, torch.Tensor] = {"embeddings": q}
        if self.head is not None and "y" in batch:
            logits = intent_logits(q, self.head.weight, self.head.bias)
            out["logits"] = logits
            if bool((batch["y"] >= 0).any()):
                ce = nn.functional.cross_entropy(logits, batch["y"], ignore_index=-100)
                loss = loss + self.intent_weight * ce
        out["loss"] = loss
        return out


def make_collate(encoder: Any):
    """Collate for `(question, positive_text, positive_key, intent_id)` rows.

    Only the first row per positive key in a batch joins the in-batch-negatives loss, so two
    paraphrases of the same answer never act as each other's negatives.
    """

    def collate(rows: Sequence[tuple[str, str, str, int]]) -> dict[str, Any]:
        seen: set[str] = set()
        p_rows, positives = [], []
        for i, (_, positive, key, _) in enumerate(rows):
            if positive and key not in seen:
                seen.add(key)
                p_rows.append(i)
                positives.append(positive)
        batch: dict[str, Any] = {
            "q": tokenize(encoder, [r[0] for r in rows]),
            "y": torch.tensor([r[3] for r in rows], dtype=torch.long),
            "p_rows": torch.tensor(p_rows, dtype=torch.long),
        }
        if positives:
            batch["p"] = tokenize(encoder, positives)
        return batch

    return collate


def make_frozen_collate(cache: dict[str, np.ndarray]):
    """Collate for a frozen encoder: cached question embeddings and intent ids (head-only training)."""

    def collate(rows: Sequence[tuple[str, str, str, int]]) -> dict[str, Any]:
        return {
            "q_emb": torch.from_numpy(np.stack([cache[r[0]] for r in rows])),
            "y": torch.tensor([r[3] for r in rows], dtype=torch.long),
        }

    return collate


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX512-BF16), so bf16 is faster, not slower."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # older torch without the probes: stay in float32
        return False


def set_precision(encoder: Any, precision: str, device: str) -> str:
    """Casts the encoder for inference and returns the precision used (`fp32` or `bf16`).

    `auto` picks bf16 on a CPU with native bf16 support: the forward of a single short query is
    bound by reading the weights, which bf16 halves (cosine to the float32 embedding ~0.9999).
    """
    if precision == "auto":
        precision = "bf16" if str(device).startswith("cpu") and native_bf16_cpu() else "fp32"
    encoder.to(torch.bfloat16 if precision == "bf16" else torch.float32)
    return precision


@dataclass
class Hit:
    """One answer found for a query: fused score and its dense part."""

    answer_id: str
    score: float
    dense: float


class KnowledgeIndex:
    """Exact inner-product search over entries (answers and paraphrases), max-pooled per answer.

    Args:
        entry_ids: (E,) the answer id each entry belongs to.
        entry_texts: (E,) entry texts (for BM25).
        vectors: (E, D) normalised embeddings.
        bm25_weight: Weight of the per-query normalised BM25 score; 0 disables BM25.

    The BM25 index is built on first use, so a KB served without hybrid search never pays for it.
    """

    def __init__(
        self,
        entry_ids: Sequence[str],
        entry_texts: Sequence[str],
        vectors: np.ndarray,
        bm25_weight: float = 0.0,
    ) -> None:
        import faiss

        self.entry_texts = list(entry_texts)
        self.bm25_weight = bm25_weight
        # Answers as integer codes per entry, so pooling entries into answers is array work.
        self.answer_ids, self.codes = np.unique(
            np.asarray(entry_ids, dtype=str), return_inverse=True
        )
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(self.codes), -1)
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        if len(self.vectors):
            self.index.add(self.vectors)
        self._bm25: Any = None
        self._bm25_lock = threading.Lock()

    @property
    def bm25(self):
        """The bm25s retriever over the entry texts (built once, on first use); None without entries."""
        if self._bm25 is None and self.entry_texts:
            with self._bm25_lock:
                if self._bm25 is None:
                    self._bm25 = self._build_bm25()
        return self._bm25

    def _build_bm25(self):
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize(self.entry_texts, stopwords="en", show_progress=False),
            show_progress=False,
        )
        return retriever

    def bm25_scores(self, query: str) -> np.ndarray:
        """(E,) BM25 scores of every entry, divided by the best one (0 when nothing matches)."""
        import bm25s

        if self.bm25 is None:
            return np.zeros(0, dtype=np.float32)
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False, return_ids=False)[0]
        scores = (
            np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)
            if tokens
            else np.zeros(len(self.entry_texts), dtype=np.float32)
        )
        top = scores.max() if len(scores) else 0.0
        return scores / top if top > 0 else scores

    def search(
        self,
        vector: np.ndarray,
        query: str = "",
        k: int = 10,
        bm25_weight: float | None = None,
        depth: int = 200,
    ) -> list[Hit]:
        """Top-`k` answers for one query, best first.

        Candidates are the `depth` nearest entries, plus, with BM25, the `depth` best lexical
        matches; each answer scores as its best candidate entry.
        """
        n = self.index.ntotal
        if n == 0:
            return []
        weight = self.bm25_weight if bm25_weight is None else bm25_weight
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        sims, idx = self.index.search(q, min(depth, n))
        found = idx[0] >= 0
        cand, dense = idx[0][found], sims[0][found]
        fused = dense
        if weight > 0 and query:
            lexical = self.bm25_scores(query)
            top = np.argpartition(-lexical, min(depth, n) - 1)[:depth]
            extra = np.setdiff1d(top[lexical[top] > 0], cand)
            if len(extra):
                cand = np.concatenate([cand, extra])
                dense = np.concatenate([dense, self.vectors[extra] @ q[0]])
            fused = dense + weight * lexical[cand]
        order = np.argsort(-fused, kind="stable")
        codes = self.codes[cand[order]]
        # The first time an answer appears in best-first order is its best entry.
        _, first = np.unique(codes, return_index=True)
        best = np.sort(first)[:k]
        return [
            Hit(str(self.answer_ids[codes[p]]), float(fused[order[p]]), float(dense[order[p]]))
            for p in best
        ]
