"""The running bot: loads an artifact and answers messages in context.

One message costs one encoder forward (two texts in that forward for a follow-up, which is also
tried in the context of the previous question); the same embedding feeds the intent head and the
KB search. Reply wording lives in `replies`, the editable KB in `live_kb`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from customer_service.cleaning import mask_pii
from customer_service.kb_store import KnowledgeBase
from customer_service.live_kb import LiveKnowledgeBase
from customer_service.ood import Calibration
from customer_service.replies import build_reply
from customer_service.retrieval import KnowledgeIndex, embed_queries, encode, set_precision
from customer_service.scoring import Decision, decide
from customer_service.session import (
    InMemorySessionStore,
    Session,
    SessionStore,
    extract_slots,
    is_follow_up,
)
from shared.artifacts import load_json, load_weights, read_manifest
from shared.devices import resolve_device
from shared.engine import InferenceEngine
from shared.errors import InputError
from shared.models import load_model

log = logging.getLogger(__name__)


class CustomerServiceBot:
    """Runtime of one artifact. Thread-safe for chat; KB edits are serialised by a lock.

    Args:
        artifact_dir: Folder written by `verticals train customer_service`.
        device: `auto`, `cpu`, `cuda`, ...
        sessions: A session store; in memory with the artifact's TTL when omitted.
        kb_root: Where live KB versions are kept; the artifact folder when omitted.
        precision: Encoder weights at inference: `auto` (bf16 on a CPU with native bf16, else
            fp32), `fp32` or `bf16`.
    """

    def __init__(
        self,
        artifact_dir: Path,
        device: str = "auto",
        sessions: SessionStore | None = None,
        kb_root: Path | None = None,
        precision: str = "auto",
    ) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(self.artifact_dir)
        bot = load_json(self.artifact_dir / "bot.json")
        self.device = str(resolve_device(device))
        self.encoder = load_model(
            str(self.artifact_dir / "encoder"), "sentence-encoder", device=self.device
        )
        self.encoder.eval()
        self.precision = set_precision(self.encoder, precision, self.device)
        self.intents: list[str] = bot["intents"]
        self.calibration = Calibration(**bot["calibration"])
        self.slot_values: dict[str, list[str]] = bot.get("slots", {})
        self.head = self._load_head()
        self.kb_root = Path(kb_root) if kb_root else self.artifact_dir
        if kb_root and not (self.kb_root / "kb" / "CURRENT").exists():
            shutil.copytree(self.artifact_dir / "kb", self.kb_root / "kb", dirs_exist_ok=True)
        self.kb = LiveKnowledgeBase(
            self.kb_root, lambda texts: encode(self.encoder, texts), self.calibration.bm25_weight
        )
        self.sessions = sessions or InMemorySessionStore(
            bot.get("session_ttl_s", 1800), bot.get("max_sessions", 10_000)
        )
        # No batching wait: a lone message runs at once; concurrent ones batch while one runs.
        self.engine = InferenceEngine(self.encode_batch, max_batch_size=32, warmup_items=["hello"])

    def _load_head(self) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.artifact_dir / "head.safetensors"
        if not path.exists():
            return None
        state = load_weights(path)
        return state["weight"].float().numpy(), state["bias"].float().numpy()

    # -- inference -------------------------------------------------------------------------
    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """The engine's batch function: one normalised (D,) vector per text (one forward)."""
        return list(embed_queries(self.encoder, texts))

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
        kb, index = self.kb.current()
        session = self.sessions.get(session_id) or Session(session_id)
        text = queries[0]
        decision, used_context = self._decide(vectors[0], text, kb, index), False
        threshold = self.calibration.threshold
        if len(queries) > 1:
            # A follow-up is read in context when that reading is in scope and the message alone
            # is not, or is less sure of its answer ("and for my credit card?").
            contextual = self._decide(vectors[1], queries[1], kb, index)
            if contextual.handoff_score >= threshold and (
                decision.handoff_score < threshold or contextual.confidence > decision.confidence
            ):
                decision, used_context = contextual, True
        mentioned = extract_slots(text, self.slot_values)
        if (
            decision.handoff_score < threshold
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
                    in_scope=session.last_in_scope,
                ),
                True,
            )
        session.slots.update(mentioned)
        response = build_reply(decision, kb, session, text, self.calibration, self.slot_values)
        session.add_turn("user", text)
        session.add_turn("bot", response["answer"])
        if not response["handoff"]:
            session.last_query = queries[1] if used_context else text
            session.last_answer_id, session.last_intent = decision.answer_id, decision.intent
            session.last_confidence = decision.confidence
            session.last_in_scope = decision.handoff_score
        self.sessions.put(session)
        log.info(
            "chat session=%s answer=%s confidence=%.3f in_scope=%.3f handoff=%s context=%s",
            session_id,
            response["answer_id"],
            decision.confidence,
            decision.handoff_score,
            response["handoff"],
            used_context,
        )
        return {**response, "context_used": used_context}

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
        kb, index = self.kb.current()
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
        kb = self.kb.snapshot()
        return {
            "model": self.manifest["model_name"],
            "precision": self.precision,
            "metrics": self.manifest["metrics"],
            "calibration": self.calibration.as_dict(),
            "intents": len(self.intents),
            "kb_version": kb.version,
            "kb_answers": len(kb.answers),
            "kb_entries": len(kb.entry_ids),
        }

    # -- knowledge-base edits (persisted atomically; see `live_kb`) -------------------------
    def kb_snapshot(self) -> KnowledgeBase:
        return self.kb.snapshot()

    def add_answers(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Adds answers (with optional example `questions`); 409 if an id exists."""
        return self.kb.add(items)

    def update_answer(self, answer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Changes an answer's fields (re-embedding it); its known paraphrases are kept."""
        return self.kb.update(answer_id, changes)

    def remove_answer(self, answer_id: str) -> dict[str, Any]:
        return self.kb.remove(answer_id)


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
