"""The running bot: loads an artifact and answers messages in context.

One message costs one encoder forward (two texts in that forward for a follow-up, which is also
tried in the context of the previous question); the same embedding feeds the dialogue-act
classifier, the intent head and the KB search. A message is read in this order:

1. a dialogue act (greeting, thanks, goodbye, yes, no, a request for a person) gets its reply;
   a request for a person always hands off;
2. a value for a slot the bot has just asked for completes the waiting answer;
3. otherwise it is a question, read alone and, when it refers to the previous topic (see
   `session.is_follow_up`), also in that context; an answer whose template needs a slot the
   conversation has not given asks for it first.

Reply wording lives in `replies`, the editable KB in `live_kb`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from customer_service import adapter
from customer_service.cleaning import mask_pii
from customer_service.config import CustomerServiceSettings
from customer_service.dialogue import after_act, completes_pending, previous_decision, remember
from customer_service.dialogue_acts import DEFAULT_REPLIES, HUMAN, ActClassifier
from customer_service.kb_store import KnowledgeBase
from customer_service.live_kb import LiveKnowledgeBase
from customer_service.ood import Calibration
from customer_service.replies import act_reply, build_reply
from customer_service.retrieval import KnowledgeIndex, intent_logits, set_precision
from customer_service.scoring import Decision, decide
from customer_service.session import (
    InMemorySessionStore,
    Session,
    SessionLocks,
    SessionStore,
    extract_slots,
    is_follow_up,
)
from customer_service.tenants import (
    BotTenants,
    TenantEmbedder,
    TenantText,
    check_servable,
)
from shared.artifacts import load_json, load_weights, read_manifest
from shared.devices import resolve_device
from shared.encoder_int8 import is_int8_folder, load_encoder
from shared.engine import InferenceEngine
from shared.errors import InputError
from shared.models import embed_texts
from shared.tenants import no_tenants

log = logging.getLogger(__name__)


class CustomerServiceBot:
    """Runtime of one artifact. Thread-safe for chat; KB edits are serialised by a lock.

    The messages of one session take turns (`SessionLocks`): each reads the session once,
    answers and writes it once, so concurrent messages of a session are all remembered.

    Args:
        artifact_dir: Folder written by `verticals train customer_service`.
        settings: Deployment settings: `device`, `customer_service_precision` (encoder weights
            at inference: `auto` is bf16 on a CPU with native bf16, else fp32) and the batching
            knobs.
        sessions: A session store; in memory with the artifact's TTL when omitted.
        kb_root: Where live KB versions are kept; the artifact folder when omitted.
        encoder: A tenant's view of a shared encoder (`tenants.TenantEncoder`), in place of
            the artifact's own; with it, `embedder` queues the tenant's texts in the served
            bot's engine. With `settings.tenants_dir` (and neither of these) the bot serves
            the tenants of that folder beside itself (`customer_service.tenants`).
    """

    def __init__(
        self,
        artifact_dir: Path,
        settings: CustomerServiceSettings,
        sessions: SessionStore | None = None,
        kb_root: Path | None = None,
        encoder: Any = None,
        embedder: Any = None,
    ) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(self.artifact_dir, vertical="customer_service")
        bot = load_json(self.artifact_dir / "bot.json")
        self.device = str(resolve_device(settings.device))
        serves_tenants = encoder is None and settings.tenants_dir is not None
        section = check_servable(self.artifact_dir, self.manifest) if serves_tenants else None
        self._load_encoder(encoder, settings, merge=not serves_tenants)
        self.intents: list[str] = bot["intents"]
        self.calibration = Calibration(**bot["calibration"])
        self.slot_values: dict[str, list[str]] = bot.get("slots", {})
        self.head = self._load_head()
        dialogue = bot.get("dialogue", {})
        self.replies: dict[str, str] = {**DEFAULT_REPLIES, **dialogue.get("replies", {})}
        self.acts = (
            ActClassifier.load(
                self.artifact_dir / "acts.safetensors",
                dialogue["act_labels"],
                dialogue.get("act_threshold", 0.5),
            )
            if (self.artifact_dir / "acts.safetensors").exists()
            else None  # an artifact from before dialogue acts: every message is a question
        )
        self.kb_root = Path(kb_root) if kb_root else self.artifact_dir
        if kb_root and not (self.kb_root / "kb" / "CURRENT").exists():
            shutil.copytree(self.artifact_dir / "kb", self.kb_root / "kb", dirs_exist_ok=True)
        self.kb = LiveKnowledgeBase(
            self.kb_root,
            lambda texts: embed_texts(self.encoder, texts),
            self.calibration.bm25_weight,
        )
        self.sessions = sessions or InMemorySessionStore(
            bot.get("session_ttl_s", 1800), bot.get("max_sessions", 10_000)
        )
        self.locks = SessionLocks()
        self.tenants: BotTenants | None = None
        self.engine: InferenceEngine | None = None
        if embedder is not None:  # a tenant's bot: its texts batch in the served bot's engine
            self.embedder = embedder
        elif section is not None:  # the served bot, with tenants: (tenant, text) items
            self.engine = InferenceEngine.from_settings(
                self._encode_items, settings, warmup_items=[(None, "hello")]
            )
            self.embedder = TenantEmbedder(self.engine, None)
            self.tenants = BotTenants(self, section, settings)
        else:
            # Without a batching wait (the default) a lone message runs at once; concurrent
            # ones batch while one runs.
            self.engine = InferenceEngine.from_settings(
                self.encode_batch, settings, warmup_items=["hello"]
            )
            self.embedder = self.engine

    def _load_encoder(self, encoder: Any, settings: CustomerServiceSettings, merge: bool) -> None:
        """The artifact's encoder (or the tenant's view `encoder`) and its precision."""
        if encoder is not None:
            self.encoder, self.precision = encoder, "fp32"
            return
        encoder_dir = self.artifact_dir / "encoder"
        int8 = is_int8_folder(encoder_dir)  # `verticals compress --method int8`: CPU only
        self.device = "cpu" if int8 else self.device
        if adapter.is_adapter_artifact(self.manifest):  # its base by name, hash-checked
            self.encoder = adapter.load_encoder(
                self.artifact_dir, self.manifest, self.device, merge=merge
            )
        else:
            self.encoder = load_encoder(encoder_dir, self.device).eval()
        if int8:
            self.precision = "int8"
        elif not merge:  # tenants' adapters load in float32 beside the served one
            self.precision = set_precision(self.encoder, "fp32", self.device)
        else:
            self.precision = set_precision(
                self.encoder, settings.customer_service_precision, self.device
            )

    def _encode_items(self, items: list[TenantText]) -> list[np.ndarray]:
        """The engine's batch function with tenants: each (tenant, text) by its adapter."""
        assert self.tenants is not None
        return self.tenants.encode_items(items)

    def bot_for(self, tenant: str | None) -> CustomerServiceBot:
        """The bot that answers for `tenant` (`X-Tenant`): this one for None.

        Raises:
            InputError: 404 (no such tenant, or no tenants here), 422 (bad name), 409 (it does
                not fit this base).
        """
        if tenant is None:
            return self
        if self.tenants is None:
            raise no_tenants(tenant)
        return self.tenants.bot(tenant)

    def _load_head(self) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.artifact_dir / "head.safetensors"
        if not path.exists():
            return None
        state = load_weights(path)
        return state["weight"].float().numpy(), state["bias"].float().numpy()

    # -- inference -------------------------------------------------------------------------
    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """The engine's batch function: one normalised (D,) vector per text (one forward)."""
        return list(embed_texts(self.encoder, texts))

    async def chat_async(self, session_id: str, message: str) -> dict[str, Any]:
        """Answers a message in its session (the service path; embeddings batch across requests)."""
        async with self.locks.hold_async(session_id):
            session = self.sessions.get(session_id) or Session(session_id)
            queries = self.plan(session, message)
            return self.reply(session, queries, await self.embedder.submit_many(queries))

    def chat(self, session_id: str, message: str) -> dict[str, Any]:
        """`chat_async` for synchronous callers (CLI, `predict`, tests): embeds inline."""
        with self.locks.hold(session_id):
            session = self.sessions.get(session_id) or Session(session_id)
            queries = self.plan(session, message)
            return self.reply(session, queries, self.embedder.run(queries))

    def plan(self, session: Session, message: str) -> list[str]:
        """Queries to embed for a message: itself, plus itself in context when it reads as a follow-up."""
        text = mask_pii(message.strip())
        if session.last_query and is_follow_up(text, self.slot_values, session.last_slots):
            return [text, f"{session.last_query} {text}"]
        return [text]

    def classify_act(self, text: str, vector: np.ndarray) -> tuple[str | None, float]:
        """The dialogue act of a message (`text` embedded as `vector`), or None for a question."""
        if self.acts is None:
            return None, 0.0
        return self.acts.classify(vector)

    def kb_claims(
        self, decision: Decision, act: str, act_confidence: float, session: Session
    ) -> bool:
        """Whether the knowledge base, rather than the built-in dialogue act, answers a message.

        A customer whose KB has its own intents for greetings, thanks or yes/no (CLINC150 has
        `greeting`, `thank_you`, `yes`...) wants its answers, not ours: an intent of the KB wins
        when it is in scope and surer than the act classifier. A request for a person always
        hands off, and any act while the bot waits for a slot value stays an act.
        """
        if act == HUMAN or decision.intent is None or session.pending_slots:
            return False
        in_scope = decision.handoff_score >= self.calibration.threshold
        return in_scope and decision.confidence >= act_confidence

    def _decide(
        self, vector: np.ndarray, query: str, kb: KnowledgeBase, index: KnowledgeIndex, k: int = 20
    ) -> Decision:
        hits = index.search(vector, query, k=k)
        logits = None if self.head is None else intent_logits(vector, *self.head)
        return decide(hits, logits, self.intents, kb.answers, self.calibration)

    def _read(
        self,
        session: Session,
        queries: list[str],
        vectors: list[np.ndarray],
        mentioned: dict[str, str],
        kb: KnowledgeBase,
        index: KnowledgeIndex,
    ) -> tuple[Decision, bool]:
        """The decision for a message and whether it leaned on the conversation."""
        text, threshold = queries[0], self.calibration.threshold
        decision, used_context = self._decide(vectors[0], text, kb, index), False
        if len(queries) > 1:
            # A follow-up is read in context when that reading is in scope and the message alone
            # is not, or is less sure of its answer ("and for my credit card?").
            contextual = self._decide(vectors[1], queries[1], kb, index)
            if contextual.handoff_score >= threshold and (
                decision.handoff_score < threshold or contextual.confidence > decision.confidence
            ):
                decision, used_context = contextual, True
        if (
            decision.handoff_score < threshold
            and mentioned
            and session.last_answer_id in kb.answers
            and is_follow_up(text, self.slot_values, session.last_slots)
        ):  # "credit one": a slot value for the previous answer
            decision, used_context = replace(previous_decision(session), hits=decision.hits), True
        return decision, used_context

    def reply(
        self, session: Session, queries: list[str], vectors: list[np.ndarray]
    ) -> dict[str, Any]:
        """Answers a message (its `plan` queries, embedded) and saves the session (the one write)."""
        kb, index = self.kb.current()  # one consistent KB for the whole message
        text = queries[0]
        mentioned = extract_slots(text, self.slot_values)
        decision, used_context = self._read(session, queries, vectors, mentioned, kb, index)
        act, act_confidence = self.classify_act(text, vectors[0])
        if act is not None and self.kb_claims(decision, act, act_confidence, session):
            act = None  # the customer's own intent for "thank you" answers it
        if act is not None:  # before any follow-up reading: "ok thanks" is thanks
            response, used_context = act_reply(act, act_confidence, session, self.replies), False
            after_act(session, act)
        else:
            if completes_pending(
                session, text, mentioned, self.slot_values, decision, self.calibration.threshold
            ):
                decision, used_context = previous_decision(session), True
            session.slots.update(mentioned)
            response = build_reply(
                decision, kb, session, self.calibration, self.slot_values, self.replies
            )
            remember(session, response, decision, kb, queries[1] if used_context else text)
        session.add_turn("user", text)
        session.add_turn("bot", response["answer"])
        self.sessions.put(session)
        log.info(
            "chat session=%s act=%s answer=%s confidence=%.3f in_scope=%.3f handoff=%s context=%s",
            session.session_id,
            act,
            response["answer_id"],
            decision.confidence,
            decision.handoff_score,
            response["handoff"],
            used_context,
        )
        return {**response, "context_used": used_context}

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows of `{message, session_id?}` answered in order (a session's turns build on each other)."""
        out = []
        for i, row in enumerate(rows):
            message = str(row.get("message") or row.get("question") or "").strip()
            if not message:
                raise InputError(f"row {i + 1}: 'message' is empty")
            out.append(self.chat(str(row.get("session_id") or f"row-{i}"), message))
        return out

    async def search_async(self, query: str, k: int = 5) -> dict[str, Any]:
        """The top-`k` answers for a query with their fused scores (the service path)."""
        text = mask_pii(query.strip())
        return self._search(text, (await self.embedder.submit_many([text]))[0], k)

    def search(self, query: str, k: int = 5) -> dict[str, Any]:
        """`search_async` for synchronous callers."""
        text = mask_pii(query.strip())
        return self._search(text, self.embedder.run([text])[0], k)

    def _search(self, query: str, vector: np.ndarray, k: int) -> dict[str, Any]:
        """The top-`k` answers by fused retrieval score, except that the answer chat would give
        (the intent head's pick among the retrieved answers) comes first, marked `chosen`: the
        search and the chat agree, and the head trained on the paraphrases orders the top."""
        kb, index = self.kb.current()
        decision = self._decide(vector, query, kb, index, k=max(k, 20))
        hits = sorted(decision.hits, key=lambda h: h.answer_id != decision.answer_id)[:k]
        results = [
            {
                "answer_id": h.answer_id,
                "score": round(h.score, 4),
                "dense_score": round(h.dense, 4),
                "chosen": h.answer_id == decision.answer_id,
                **{
                    key: kb.answers[h.answer_id].get(key, "")
                    for key in ("title", "answer", "intent")
                },
            }
            for h in hits
        ]
        return {"query": query, "results": results}

    def gauges(self) -> dict[str, float]:
        """Live numbers for `/metrics`: sessions held and the knowledge base's size."""
        kb = self.kb.snapshot()
        return {"live_sessions": len(self.sessions), "kb_answers": len(kb.answers)}

    def info(self) -> dict[str, Any]:
        kb = self.kb.snapshot()
        return {
            "model": self.manifest["model_name"],
            "precision": self.precision,
            "adapter": _adapter_info(self.manifest),
            "tenants": self.tenants.info() if self.tenants is not None else None,
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


def _adapter_info(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """What `info` says of an adapter artifact's adapter (merged into its base at load)."""
    if not adapter.is_adapter_artifact(manifest):
        return None
    record = manifest[adapter.MANIFEST_KEY]
    keys = ("method", "r", "base_model", "base_sha256", "adapter_parameters")
    return {k: record[k] for k in keys if k in record}
