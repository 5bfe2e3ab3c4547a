"""The knowledge base a running bot serves: read without locks, edited one change at a time.

Readers take `current()`, an immutable `(KnowledgeBase, KnowledgeIndex)` pair swapped in with a
single assignment, so a request sees the old KB or the new one, never half of each. Edits embed
their new entries, write a complete new version to disk (`kb_store.save_version`) and only then
swap it in: a failed write leaves the previous KB live, on disk and in memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from customer_service.cleaning import mask_pii
from customer_service.kb_store import KnowledgeBase, load_current, save_version
from customer_service.retrieval import KnowledgeIndex, answer_text
from shared.errors import InputError

log = logging.getLogger(__name__)


class LiveKnowledgeBase:
    """The served KB and its index, with add / change / remove persisted atomically.

    Args:
        root: Folder holding `kb/` (versions and the `CURRENT` pointer).
        embed: Bulk text embedder, `(texts) -> (N, D)` normalised float32 vectors.
        bm25_weight: Weight of BM25 in the index's hybrid score (from calibration).
    """

    def __init__(
        self, root: Path, embed: Callable[[Sequence[str]], np.ndarray], bm25_weight: float = 0.0
    ) -> None:
        self.root = Path(root)
        self.embed = embed
        self.bm25_weight = bm25_weight
        self._lock = threading.Lock()
        self._install(load_current(self.root))

    def _install(self, kb: KnowledgeBase) -> None:
        self._state = (
            kb,
            KnowledgeIndex(kb.entry_ids, kb.entry_texts, kb.vectors, self.bm25_weight),
        )

    def current(self) -> tuple[KnowledgeBase, KnowledgeIndex]:
        """The live snapshot and its index (consistent with each other)."""
        return self._state

    def snapshot(self) -> KnowledgeBase:
        return self._state[0]

    def add(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Adds answers (with optional example `questions`); 409 if an id exists."""
        with self._lock:
            kb = self._state[0]
            clash = sorted({i["answer_id"] for i in items} & set(kb.answers))
            if clash:
                raise InputError(
                    f"answer_id already in the knowledge base: {clash}; use PUT to change it", 409
                )
            return self._commit(kb.plus(*self._entries(items)))

    def update(self, answer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Changes an answer's fields (re-embedding it); its known paraphrases are kept."""
        with self._lock:
            kb = self._state[0]
            if answer_id not in kb.answers:
                raise InputError(f"answer_id {answer_id!r} is not in the knowledge base", 404)
            item = {
                "answer_id": answer_id,
                **kb.answers[answer_id],
                **{k: v for k, v in changes.items() if v is not None},
            }
            keep = [
                i
                for i, (a, kind) in enumerate(zip(kb.entry_ids, kb.entry_kinds, strict=True))
                if a == answer_id and kind == "paraphrase"
            ]
            answers, ids, texts, kinds, vectors = self._entries([item])
            ids += [answer_id] * len(keep)
            texts += [kb.entry_texts[i] for i in keep]
            kinds += ["paraphrase"] * len(keep)
            vectors = np.concatenate([vectors, kb.vectors[keep]]) if keep else vectors
            return self._commit(kb.without({answer_id}).plus(answers, ids, texts, kinds, vectors))

    def remove(self, answer_id: str) -> dict[str, Any]:
        with self._lock:
            kb = self._state[0]
            if answer_id not in kb.answers:
                raise InputError(f"answer_id {answer_id!r} is not in the knowledge base", 404)
            return self._commit(kb.without({answer_id}))

    def _entries(self, items: list[dict[str, Any]]):
        """Masked answer records and their entries (answer text + questions), embedded."""
        answers, ids, texts, kinds = {}, [], [], []
        for item in items:
            aid = item["answer_id"]
            record = {
                k: mask_pii(str(item.get(k) or "")) for k in ("answer", "intent", "title", "tags")
            }
            answers[aid] = record
            questions = [mask_pii(q) for q in item.get("questions") or []]
            ids += [aid] * (1 + len(questions))
            texts += [answer_text(record["title"], record["answer"]), *questions]
            kinds += ["answer"] + ["paraphrase"] * len(questions)
        return answers, ids, texts, kinds, self.embed(texts)

    def _commit(self, kb: KnowledgeBase) -> dict[str, Any]:
        try:
            saved = save_version(self.root, kb)  # fails before anything changes in memory
        except OSError as exc:
            raise InputError(
                f"the knowledge base could not be saved ({exc}); the previous knowledge base "
                "is still live, unchanged",
                503,
            ) from None
        self._install(saved)
        log.info("knowledge base now at %s (%d answers)", saved.version, len(saved.answers))
        return {"version": saved.version, "answers": len(saved.answers)}
