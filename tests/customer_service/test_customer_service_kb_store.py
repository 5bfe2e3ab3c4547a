from __future__ import annotations

import numpy as np
import pytest

from customer_service import kb_store
from customer_service.kb_store import KnowledgeBase, load_current, save_version
from customer_service.retrieval import KnowledgeIndex
from shared.errors import ArtifactError


def _kb(n: int = 3) -> KnowledgeBase:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    answers = {
        f"A{i}": {"answer": f"answer {i}", "intent": "", "title": f"t{i}", "tags": ""}
        for i in range(n)
    }
    return KnowledgeBase(
        answers, list(answers), [f"text {i}" for i in range(n)], ["answer"] * n, vectors
    )


def test_versions_round_trip_and_current_moves_atomically(tmp_path):
    first = save_version(tmp_path, _kb())
    second = save_version(tmp_path, first.without({"A1"}))
    loaded = load_current(tmp_path)
    assert (first.version, second.version, loaded.version) == ("v000001", "v000002", "v000002")
    assert set(loaded.answers) == {"A0", "A2"} and loaded.entry_ids == ["A0", "A2"]
    assert np.allclose(loaded.vectors, first.vectors[[0, 2]])


def test_a_failed_write_leaves_the_previous_version_live(tmp_path, monkeypatch):
    save_version(tmp_path, _kb())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.numpy.save_file", broken)
    with pytest.raises(OSError):
        save_version(tmp_path, _kb(5))
    loaded = load_current(tmp_path)
    assert loaded.version == "v000001" and len(loaded.answers) == 3
    assert not [p for p in (tmp_path / "kb").iterdir() if p.name.startswith(".")]


def test_a_version_folder_appears_through_the_shared_atomic_swap(tmp_path, monkeypatch):
    save_version(tmp_path, _kb())

    def broken(tmp, final):
        raise OSError("rename failed")

    monkeypatch.setattr("shared.artifacts.swap_into_place", broken)
    with pytest.raises(OSError, match="rename failed"):
        save_version(tmp_path, _kb(5))
    assert sorted(p.name for p in (tmp_path / "kb").iterdir()) == ["CURRENT", "v000001"]
    assert load_current(tmp_path).version == "v000001"


def test_old_versions_are_pruned(tmp_path):
    kb = _kb()
    for _ in range(kb_store.KEEP_VERSIONS + 2):
        kb = save_version(tmp_path, kb)
    assert len(list((tmp_path / "kb").glob("v*"))) == kb_store.KEEP_VERSIONS


def test_missing_kb_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="no knowledge base"):
        load_current(tmp_path)


def test_index_max_pools_entries_per_answer_and_fuses_bm25():
    vectors = np.eye(4, dtype=np.float32)
    index = KnowledgeIndex(
        ["A", "A", "B", "C"], ["freeze card", "lock card", "open account", "close account"], vectors
    )
    hits = index.search(np.array([0, 0.9, 0.1, 0], dtype=np.float32), k=3)
    assert [h.answer_id for h in hits] == ["A", "B", "C"] and hits[0].score == pytest.approx(0.9)
    query = np.array([0, 0, 0.5, 0.55], dtype=np.float32)
    assert index.search(query, "close account", k=1, bm25_weight=0.0)[0].answer_id == "C"
    assert index.search(query, "open account", k=1, bm25_weight=0.5)[0].answer_id == "B"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\r", "\x1c"])
def test_answers_with_unicode_line_separators_survive_a_restart(tmp_path, separator):
    kb = _kb()
    kb.answers["A0"]["answer"] = f"Open at 9am.{separator}Closed Sundays."
    save_version(tmp_path, kb)
    assert (
        load_current(tmp_path).answers["A0"]["answer"] == f"Open at 9am.{separator}Closed Sundays."
    )
