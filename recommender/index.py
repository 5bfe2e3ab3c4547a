"""The FAISS item index: exact inner product for small catalogues, HNSW or IVF for large ones.

Rows are positions in `ids`/`emb`; the FAISS label of a vector is its row. Adding or updating
items changes the index online. Exact and IVF indexes remove the old vector of an updated item;
HNSW cannot remove, so its old vector stays as a stale entry: candidates are always rescored
exactly against the current embeddings, and the graph is rebuilt once stale entries pass 10%.
`save` writes a new folder and swaps it into place, so a crash never leaves a half-written index.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from shared.artifacts import atomic_folder

from .schemas import IndexConfig

log = logging.getLogger(__name__)


class ItemIndex:
    """Item ids, their unit embeddings and a FAISS index over them."""

    def __init__(self, dim: int, cfg: IndexConfig | None = None, kind: str | None = None) -> None:
        self.dim = dim
        self.cfg = cfg or IndexConfig()
        self.requested = kind or self.cfg.kind
        self.kind = "exact"
        self.ids: list[str] = []
        self.row_of: dict[str, int] = {}
        self.emb = np.zeros((0, dim), dtype=np.float32)
        self.stale = 0
        self.index = None

    def __len__(self) -> int:
        return len(self.ids)

    def build(self, ids: list[str], emb: np.ndarray) -> ItemIndex:
        """(Re)builds the index over `ids` with (N, D) unit vectors `emb`."""
        self.ids = [str(i) for i in ids]
        self.row_of = {item: row for row, item in enumerate(self.ids)}
        self.emb = np.ascontiguousarray(emb, dtype=np.float32).reshape(-1, self.dim)
        self.kind = self._choose_kind(len(self.ids))
        self.index, self.stale = self._new_index(self.emb), 0
        self.index.add_with_ids(self.emb, np.arange(len(self.ids), dtype=np.int64))
        return self

    def _choose_kind(self, n: int) -> str:
        if self.requested != "auto":
            return self.requested
        # IVF measured better than HNSW at 100k items (bench/results/recommender_latency.json)
        return "exact" if n < self.cfg.exact_below else "ivf"

    def _new_index(self, train: np.ndarray):
        import faiss

        if self.kind == "exact":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if self.kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(self.dim, self.cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efSearch = self.cfg.hnsw_ef_search
            hnsw.hnsw.efConstruction = 80
            return faiss.IndexIDMap(hnsw)
        nlist = int(max(1, min(4 * np.sqrt(max(1, len(train))), len(train) // 39 or 1)))
        ivf = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT
        )
        if len(train):
            ivf.train(train)
        ivf.nprobe = self.cfg.ivf_nprobe
        return ivf

    def upsert(self, ids: list[str], emb: np.ndarray) -> dict[str, int]:
        """Adds new items and replaces the vectors of known ones; returns the counts."""
        emb = np.ascontiguousarray(emb, dtype=np.float32).reshape(-1, self.dim)
        if self.index is None or (self.kind == "ivf" and not self.index.is_trained):
            merged = dict(zip(self.ids, self.emb, strict=True)) | dict(zip(ids, emb, strict=True))
            self.build(list(merged), np.stack(list(merged.values())) if merged else emb)
            return {"added": len(ids), "updated": 0}
        rows = np.empty(len(ids), dtype=np.int64)
        added = updated = 0
        for j, item in enumerate(ids):
            row = self.row_of.get(item)
            if row is None:
                row = len(self.ids)
                self.ids.append(item)
                self.row_of[item] = row
                added += 1
            else:
                updated += 1
            rows[j] = row
        known = rows[rows < len(self.emb)]
        if len(known):
            if self.kind == "hnsw":
                self.stale += len(known)
            else:
                self.index.remove_ids(known)
        if rows.max(initial=-1) >= len(self.emb):
            self.emb = np.concatenate(
                [self.emb, np.zeros((rows.max() + 1 - len(self.emb), self.dim), np.float32)]
            )
        self.emb[rows] = emb
        self.index.add_with_ids(emb, rows)
        if self.kind == "hnsw" and self.stale > 0.1 * len(self.ids):
            log.info("rebuilding the HNSW graph (%d stale entries)", self.stale)
            self.build(self.ids, self.emb)
        return {"added": added, "updated": updated}

    def search(
        self, queries: np.ndarray, k: int, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` rows per query: (B, k) scores and rows (-1 where fewer exist), rescored exactly."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(k, len(self.ids)))
        if exact or self.index is None:
            scores = queries @ self.emb.T
            if k < scores.shape[1]:  # top-k by partition, then only those k are sorted
                part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
                order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
                rows = np.take_along_axis(part, order, 1)
            else:
                rows = np.argsort(-scores, axis=1, kind="stable")
            return np.take_along_axis(scores, rows, 1), rows
        fetch = min(len(self.ids) + self.stale, k + (self.stale and min(self.stale, 4 * k)))
        _, found = self.index.search(queries, fetch)
        out_rows = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for b in range(len(queries)):
            rows = np.unique(found[b][found[b] >= 0])
            scores = self.emb[rows] @ queries[b]
            order = np.argsort(-scores, kind="stable")[:k]
            out_rows[b, : len(order)], out_scores[b, : len(order)] = rows[order], scores[order]
        return out_scores, out_rows

    def save(self, folder: Path) -> None:
        """Writes ids, embeddings and the FAISS index to `folder`, atomically."""
        import faiss

        meta = {
            "dim": self.dim,
            "kind": self.kind,
            "requested": self.requested,
            "ids": self.ids,
            "stale": self.stale,
            "config": self.cfg.model_dump(),
        }
        with atomic_folder(folder) as tmp:
            np.save(tmp / "embeddings.npy", self.emb)
            (tmp / "index.json").write_text(json.dumps(meta), encoding="utf-8")
            faiss.write_index(self.index, str(tmp / "items.faiss"))

    @classmethod
    def load(cls, folder: Path) -> ItemIndex:
        """Reads an index written by :meth:`save` (no pickle: JSON, .npy without objects, FAISS)."""
        import faiss

        folder = Path(folder)
        meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        index = cls(meta["dim"], IndexConfig(**meta["config"]), meta["requested"])
        index.kind, index.stale, index.ids = meta["kind"], meta["stale"], meta["ids"]
        index.row_of = {item: row for row, item in enumerate(index.ids)}
        index.emb = np.load(folder / "embeddings.npy", allow_pickle=False)
        index.index = faiss.read_index(str(folder / "items.faiss"))
        if index.kind == "hnsw":
            faiss.downcast_index(index.index.index).hnsw.efSearch = index.cfg.hnsw_ef_search
        elif index.kind == "ivf":
            index.index.nprobe = index.cfg.ivf_nprobe
        return index
