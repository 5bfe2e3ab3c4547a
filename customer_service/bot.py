"""The running bot: loads an artifact, answers messages in context, searches and edits its KB."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from customer_service.cleaning import mask_pii
from customer_service.kb_store import KnowledgeBase, load_current, save_version
from customer_service.ood import Calibration
from customer_service.retrieval import KnowledgeIndex, answer_text, encode
from customer_service.scoring import Decision, decide, retrieval_probs
from customer_service.session import (
    InMemorySessionStore,
    Session,
    SessionStore,
    extract_slots,
    fill_template,
    is_follow_up,
)
from shared.artifacts import load_json, load_weights, read_manifest
from shared.devices import resolve_device
from shared.engine import InferenceEngine
from shared.errors import InputError
from shared.models import load_model

log = logging.getLogger(__name__)

HANDOFF_ANSWER = (
    "I'm not sure I can answer that well, so I'm passing you to a colleague who can help."
)
_HUMAN = re.compile(
    r"\b(human|real person|live agent|an agent|a person|representative|speak to someone)\b", re.I
)


class CustomerServiceBot:
    """Runtime of one artifact. Thread-safe for chat; KB edits are serialised by a lock.

    Args:
        artifact_dir: Folder written by `verticals train customer_service`.
        device: `auto`, `cpu`, `cuda`, ...
        sessions: A session store; in memory with the artifact's TTL when omitted.
        kb_root: Where live KB versions are kept; the artifact folder when omitted.
    """

    def __init__(
        self,
        artifact_dir: Path,
        device: str = "auto",
        sessions: SessionStore | None = None,
        kb_root: Path | None = None,
    ) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(self.artifact_dir)
        bot = load_json(self.artifact_dir / "bot.json")
        self.device = str(resolve_device(device))
        self.encoder = load_model(
            str(self.artifact_dir / "encoder"), "sentence-encoder", device=self.device
        )
        self.encoder.eval()
        self.intents: list[str] = bot["intents"]
        self.calibration = Calibration(**bot["calibration"])
        self.slot_values: dict[str, list[str]] = bot.get("slots", {})
        self.head = self._load_head()
        self.kb_root = Path(kb_root) if kb_root else self.artifact_dir
        if kb_root and not (self.kb_root / "kb" / "CURRENT").exists():
            shutil.copytree(self.artifact_dir / "kb", self.kb_root / "kb", dirs_exist_ok=True)
        self._kb_lock = threading.Lock()
        self._install(load_current(self.kb_root))
        self.sessions = sessions or InMemorySessionStore(
            bot.get("session_ttl_s", 1800), bot.get("max_sessions", 10_000)
        )
        self.engine = InferenceEngine(
            self.encode_batch, max_batch_size=32, max_wait_ms=2.0, warmup_items=["hello"]
        )

    def _load_head(self) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.artifact_dir / "head.safetensors"
        if not path.exists():
            return None
        state = load_weights(path)
        return state["weight"].float().numpy(), state["bias"].float().numpy()

    def _install(self, kb: KnowledgeBase) -> None:
        """Swaps in a KB snapshot and its index in one assignment (readers see old or new, never half)."""
        self._state = (
            kb,
            KnowledgeIndex(kb.entry_ids, kb.entry_texts, kb.vectors, self.calibration.bm25_weight),
        )

    # -- inference -------------------------------------------------------------------------
    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """The engine's batch function: one normalised (D,) vector per text."""
        return list(encode(self.encoder, texts, batch_size=max(1, len(texts))))

    def plan(self, session_id: str, message: str) -> list[str]:
        """Queries to embed for a message: itself, plus itself in context when it reads as a follow-up."""
        text = mask_pii(message.strip())
        session = self.sessions.get(session_id)
        if session and session.last_query and is_follow_up(text):
            return [text, f"{session.last_query} {text}"]
        return [text]

    def _decide(
        self, vector: np.ndarray, query: str, kb: KnowledgeBase, index: KnowledgeIndex, k: int = 20
    ) -> Decision:
        hits = index.search(vector, query, k=k)
        logits = None
        if self.head is not None:
            weight, bias = self.head
            logits = (vector * 10.0) @ weight.T + bias  # same rescaling as BotTask.intent_logits
        return decide(hits, logits, self.intents, kb.answers, self.calibration)

    def reply(
        self, session_id: str, message: str, queries: list[str], vectors: list[np.ndarray]
    ) -> dict[str, Any]:
        """Answers one message (after `plan` and embedding its queries) and updates the session."""
        kb, index = self._state
        session = self.sessions.get(session_id) or Session(session_id)
        text = queries[0]
        decision, used_context = self._decide(vectors[0], text, kb, index), False
        threshold = self.calibration.threshold
        if len(queries) > 1 and decision.confidence < threshold:
            contextual = self._decide(vectors[1], queries[1], kb, index)
            if contextual.confidence >= threshold:
                decision, used_context = contextual, True
        mentioned = extract_slots(text, self.slot_values)
        if (
            decision.confidence < threshold
            and mentioned
            and session.last_answer_id in kb.answers
            and is_follow_up(text)
        ):
            decision, used_context = (
                Decision(
                    session.last_answer_id,
                    session.last_intent,
                    session.last_confidence,
                    decision.hits,
                    "context",
                ),
                True,
            )
        session.slots.update(mentioned)
        response = self._respond(decision, kb, session, text)
        session.add_turn("user", text)
        session.add_turn("bot", response["answer"])
        if not response["handoff"]:
            session.last_query = queries[1] if used_context else text
            session.last_answer_id, session.last_intent = decision.answer_id, decision.intent
            session.last_confidence = decision.confidence
        self.sessions.put(session)
        log.info(
            "chat session=%s answer=%s confidence=%.3f handoff=%s context=%s",
            session_id,
            response["answer_id"],
            decision.confidence,
            response["handoff"],
            used_context,
        )
        return {**response, "context_used": used_context}

    def _respond(
        self, decision: Decision, kb: KnowledgeBase, session: Session, text: str
    ) -> dict[str, Any]:
        probs = retrieval_probs(decision.hits, self.calibration)
        sources = [
            {
                "answer_id": h.answer_id,
                "title": kb.answers.get(h.answer_id, {}).get("title", ""),
                "score": round(h.score, 4),
                "probability": round(float(p), 4),
            }
            for h, p in zip(decision.hits[:3], probs[:3], strict=False)
        ]
        out = {
            "answer": HANDOFF_ANSWER,
            "answer_id": decision.answer_id,
            "intent": decision.intent,
            "confidence": round(decision.confidence, 4),
            "handoff": False,
            "handoff_reason": None,
            "sources": sources,
            "slots": dict(session.slots),
            "missing_slots": [],
        }
        if _HUMAN.search(text):
            return {**out, "handoff": True, "handoff_reason": "the customer asked for a human"}
        if decision.answer_id is None or decision.answer_id not in kb.answers:
            return {**out, "handoff": True, "handoff_reason": "the knowledge base has no answers"}
        if decision.confidence < self.calibration.threshold:
            reason = (
                f"confidence {decision.confidence:.2f} is below the threshold {self.calibration.threshold:.2f}: "
                "the question looks out of scope for the knowledge base"
            )
            return {**out, "handoff": True, "handoff_reason": reason}
        answer, missing = fill_template(kb.answers[decision.answer_id]["answer"], session.slots)
        if missing:
            options = "; ".join(
                f"{s.replace('_', ' ')}: {', '.join(self.slot_values.get(s, []))}" for s in missing
            )
            answer = f"{answer} (Tell me which one you mean, {options}.)"
        return {**out, "answer": answer, "missing_slots": missing}

    def chat(self, session_id: str, message: str) -> dict[str, Any]:
        """Synchronous chat (CLI, tests): plan, embed through the engine, reply."""
        queries = self.plan(session_id, message)
        return self.reply(session_id, message, queries, self.engine.run(queries))

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows of `{message, session_id?}` answered in order (a session's turns build on each other)."""
        out = []
        for i, row in enumerate(rows):
            message = str(row.get("message") or row.get("question") or "").strip()
            if not message:
                raise InputError(f"row {i + 1}: 'message' is empty")
            out.append(self.chat(str(row.get("session_id") or f"row-{i}"), message))
        return out

    def search(self, query: str, vector: np.ndarray, k: int = 5) -> list[dict[str, Any]]:
        """Top-`k` answers for a query with their fused scores."""
        kb, index = self._state
        hits = index.search(vector, mask_pii(query), k=k)
        return [
            {
                "answer_id": h.answer_id,
                "score": round(h.score, 4),
                "dense_score": round(h.dense, 4),
                **{
                    key: kb.answers[h.answer_id].get(key, "")
                    for key in ("title", "answer", "intent")
                },
            }
            for h in hits
        ]

    def info(self) -> dict[str, Any]:
        kb, _ = self._state
        return {
            "model": self.manifest["model_name"],
            "metrics": self.manifest["metrics"],
            "calibration": self.calibration.as_dict(),
            "intents": len(self.intents),
            "kb_version": kb.version,
            "kb_answers": len(kb.answers),
            "kb_entries": len(kb.entry_ids),
        }

    # -- knowledge-base edits ----------------------------------------------------------------
    def kb_snapshot(self) -> KnowledgeBase:
        return self._state[0]

    def add_answers(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Adds answers (with optional example `questions`); 409 if an id exists. Persisted before use."""
        with self._kb_lock:
            kb = self._state[0]
            clash = sorted({i["answer_id"] for i in items} & set(kb.answers))
            if clash:
                raise InputError(
                    f"answer_id already in the knowledge base: {clash}; use PUT to change it", 409
                )
            return self._commit(kb.plus(*self._entries(items)))

    def update_answer(self, answer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Changes an answer's fields (re-embedding it); its known paraphrases are kept."""
        with self._kb_lock:
            kb = self._state[0]
            if answer_id not in kb.answers:
                raise InputError(f"answer_id {answer_id!r} is not in the knowledge base", 404)
            old = kb.answers[answer_id]
            item = {
                "answer_id": answer_id,
                **old,
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

    def remove_answer(self, answer_id: str) -> dict[str, Any]:
        with self._kb_lock:
            kb = self._state[0]
            if answer_id not in kb.answers:
                raise InputError(f"answer_id {answer_id!r} is not in the knowledge base", 404)
            return self._commit(kb.without({answer_id}))

    def _entries(self, items: list[dict[str, Any]]):
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
        dim = self.encoder.get_embedding_dimension()
        vectors = encode(self.encoder, texts) if texts else np.zeros((0, dim), dtype=np.float32)
        return answers, ids, texts, kinds, vectors

    def _commit(self, kb: KnowledgeBase) -> dict[str, Any]:
        try:
            saved = save_version(self.kb_root, kb)  # fails before anything changes in memory
        except OSError as exc:
            raise InputError(
                f"the knowledge base could not be saved ({exc}); the previous knowledge base "
                "is still live, unchanged",
                503,
            ) from None
        self._install(saved)
        log.info("knowledge base now at %s (%d answers)", saved.version, len(saved.answers))
        return {"version": saved.version, "answers": len(saved.answers)}


def evaluate_runtime(runtime: CustomerServiceBot, data_path: Path) -> dict[str, float]:
    """Answer accuracy and handoff rate on a labelled pairs folder or file (`question, answer_id|intent`)."""
    from customer_service.schemas import PAIRS_SCHEMA
    from shared.data import load_table

    path = Path(data_path)
    path = path / "pairs.csv" if path.is_dir() else path
    pairs = load_table(path, PAIRS_SCHEMA)
    correct, handoffs = 0, 0
    for i, row in pairs.iterrows():
        out = runtime.chat(f"eval-{i}", str(row["question"]))
        target_intent, target_id = str(row.get("intent") or ""), str(row.get("answer_id") or "")
        correct += (
            (out["intent"] == target_intent)
            if target_intent and out["intent"]
            else out["answer_id"] == target_id
        )
        handoffs += out["handoff"]
    n = max(1, len(pairs))
    return {"accuracy": correct / n, "handoff_rate": handoffs / n, "n": float(len(pairs))}
