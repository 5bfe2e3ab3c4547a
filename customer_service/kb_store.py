"""The live knowledge base and its atomic, versioned persistence.

Layout under a root folder::

    kb/CURRENT            name of the live version (replaced atomically with os.replace)
    kb/v000001/kb.jsonl   answers: answer_id, answer, intent, title, tags
    kb/v000001/entries.jsonl       indexed entries: answer_id, text, kind (answer|paraphrase)
    kb/v000001/vectors.safetensors (E, D) normalised embeddings, row i = entry i

An update writes a complete new version folder first and only then swaps `CURRENT`, so a crash
or a failed update at any point leaves the previous version live and intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from shared.artifacts import atomic_folder, read_jsonl, write_jsonl
from shared.errors import ArtifactError

KEEP_VERSIONS = 3


@dataclass(frozen=True)
class KnowledgeBase:
    """An immutable snapshot: answers by id, plus the entries indexed for them and their vectors."""

    answers: dict[str, dict[str, str]]
    entry_ids: list[str]
    entry_texts: list[str]
    entry_kinds: list[str]
    vectors: np.ndarray
    version: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    def without(self, answer_ids: set[str]) -> KnowledgeBase:
        """A copy without the given answers and their entries."""
        keep = [i for i, aid in enumerate(self.entry_ids) if aid not in answer_ids]
        return replace(
            self,
            answers={k: v for k, v in self.answers.items() if k not in answer_ids},
            entry_ids=[self.entry_ids[i] for i in keep],
            entry_texts=[self.entry_texts[i] for i in keep],
            entry_kinds=[self.entry_kinds[i] for i in keep],
            vectors=self.vectors[keep],
        )

    def plus(
        self,
        answers: dict[str, dict[str, str]],
        ids: list[str],
        texts: list[str],
        kinds: list[str],
        vectors: np.ndarray,
    ) -> KnowledgeBase:
        """A copy with new answers and entries appended."""
        return replace(
            self,
            answers={**self.answers, **answers},
            entry_ids=self.entry_ids + ids,
            entry_texts=self.entry_texts + texts,
            entry_kinds=self.entry_kinds + kinds,
            vectors=np.concatenate([self.vectors, vectors.astype(np.float32)])
            if len(ids)
            else self.vectors,
        )


def save_version(root: str | Path, kb: KnowledgeBase) -> KnowledgeBase:
    """Writes `kb` as a new version under `root/kb` and makes it live atomically.

    Returns:
        The snapshot with its new version name.
    """
    from safetensors.numpy import save_file

    base = Path(root) / "kb"
    base.mkdir(parents=True, exist_ok=True)
    name = f"v{_latest_number(base) + 1:06d}"
    with atomic_folder(base / name) as tmp:  # a failed write leaves no folder behind
        write_jsonl(tmp / "kb.jsonl", [{"answer_id": k, **v} for k, v in kb.answers.items()])
        write_jsonl(
            tmp / "entries.jsonl",
            [
                {"answer_id": a, "text": t, "kind": k}
                for a, t, k in zip(kb.entry_ids, kb.entry_texts, kb.entry_kinds, strict=True)
            ],
        )
        save_file(
            {"vectors": np.ascontiguousarray(kb.vectors, dtype=np.float32)},
            str(tmp / "vectors.safetensors"),
        )
        (tmp / "meta.json").write_text(json.dumps(kb.meta), encoding="utf-8")
    pointer = base / f".CURRENT.tmp-{os.getpid()}"
    pointer.write_text(name, encoding="utf-8")
    os.replace(pointer, base / "CURRENT")  # the single atomic step that makes it live
    _prune(base, keep=name)
    return replace(kb, version=name)


def load_current(root: str | Path) -> KnowledgeBase:
    """Loads the live version under `root/kb`.

    Raises:
        ArtifactError: when there is no KB or the live version is incomplete.
    """
    from safetensors.numpy import load_file

    base = Path(root) / "kb"
    pointer = base / "CURRENT"
    if not pointer.is_file():
        raise ArtifactError(f"{base}: no knowledge base (missing CURRENT); train an artifact first")
    name = pointer.read_text(encoding="utf-8").strip()
    folder = base / name
    try:
        answers = {r.pop("answer_id"): r for r in read_jsonl(folder / "kb.jsonl")}
        entries = read_jsonl(folder / "entries.jsonl")
        vectors = load_file(str(folder / "vectors.safetensors"))["vectors"]
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{folder}: knowledge base version is unreadable: {exc}") from None
    return KnowledgeBase(
        answers=answers,
        entry_ids=[e["answer_id"] for e in entries],
        entry_texts=[e["text"] for e in entries],
        entry_kinds=[e["kind"] for e in entries],
        vectors=vectors,
        version=name,
        meta=meta,
    )


def _latest_number(base: Path) -> int:
    numbers = [int(p.name[1:]) for p in base.glob("v[0-9]*") if p.is_dir() and p.name[1:].isdigit()]
    return max(numbers, default=0)


def _prune(base: Path, keep: str) -> None:
    versions = sorted(p for p in base.glob("v[0-9]*") if p.is_dir())
    for old in versions[:-KEEP_VERSIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
