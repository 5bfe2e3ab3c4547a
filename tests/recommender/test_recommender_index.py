from __future__ import annotations

import numpy as np
import pytest

from recommender.index import ItemIndex
from recommender.schemas import IndexConfig


def _clustered(n, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, dim))
    x = centers[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_index_matches_brute_force():
    emb = _clustered(300)
    index = ItemIndex(32, kind="exact").build([f"i{k}" for k in range(300)], emb)
    scores, rows = index.search(emb[:5], 10)
    brute = np.argsort(-(emb[:5] @ emb.T), axis=1)[:, :10]
    assert (rows == brute).all() and np.allclose(scores[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_recall_against_exact(kind):
    emb = _clustered(2000)
    ids = [f"i{k}" for k in range(2000)]
    ann = ItemIndex(32, IndexConfig(ivf_nprobe=8), kind=kind).build(ids, emb)
    q = _clustered(50, seed=1)
    _, exact = ann.search(q, 10, exact=True)
    _, approx = ann.search(q, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.85


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_upsert_replaces_vectors_and_adds_items_online(kind, tmp_path):
    emb = _clustered(500)
    ids = [f"i{k}" for k in range(500)]
    index = ItemIndex(32, kind=kind).build(ids, emb)
    target = -emb[0]  # move i1 to the opposite side of the sphere, add a brand-new item there too
    counts = index.upsert(["i1", "new"], np.stack([target, target]))
    assert counts == {"added": 1, "updated": 1} and len(index) == 501
    _, rows = index.search(target[None], 2)
    assert {index.ids[r] for r in rows[0]} == {"i1", "new"}
    index.save(tmp_path / "idx")
    again = ItemIndex.load(tmp_path / "idx")
    _, rows2 = again.search(target[None], 2)
    assert again.kind == kind and {again.ids[r] for r in rows2[0]} == {"i1", "new"}


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    index = ItemIndex(32, kind="exact").build(["a", "b"], _clustered(2))
    index.save(tmp_path / "idx")
    import faiss

    monkeypatch.setattr(
        faiss, "write_index", lambda *a: (_ for _ in ()).throw(OSError("disk full"))
    )
    index.upsert(["c"], _clustered(1, seed=3))
    with pytest.raises(OSError):
        index.save(tmp_path / "idx")
    assert ItemIndex.load(tmp_path / "idx").ids == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]
