"""Conversation memory: a `SessionStore` interface, an in-memory TTL store, and slot extraction.

A shared store (Redis, a database) implements the same three methods and stores
`Session.to_dict()` as JSON; nothing else in the bot needs to change. `SessionLocks` makes the
messages of one session take turns (read, answer, write), so none is answered from a stale
session or overwrites another's turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

MAX_TURNS = 20
_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|same (for|with)|for (my|the)|what if|then|ok and|okay and|plus)\b",
    re.I,
)
# Words that point back at what was just discussed ("how long does it take?", "is that free?").
_ANAPHORA = re.compile(r"\b(it|its|that|this|those|these|them|one|ones|same)\b", re.I)
MAX_SLOT_FOLLOW_UP_WORDS = 6  # "credit one", "the debit card please"
MAX_ANAPHORA_FOLLOW_UP_WORDS = 6


@dataclass
class Session:
    """One conversation: recent turns, known slot values, and what was last answered."""

    session_id: str
    turns: list[dict[str, str]] = field(default_factory=list)
    slots: dict[str, str] = field(default_factory=dict)
    last_query: str | None = None
    last_answer_id: str | None = None
    last_intent: str | None = None
    last_confidence: float = 0.0
    last_in_scope: float = 1.0  # the last answer given passed the handoff threshold
    last_slots: list[str] = field(default_factory=list)  # slots of the last answer's template
    # Slots the bot asked for: the last answer waits for them (as a Rasa form does).
    pending_slots: list[str] = field(default_factory=list)

    def forget_topic(self) -> None:
        """Drops what was last discussed (after a goodbye); the turns and slots stay."""
        self.last_query, self.last_answer_id, self.last_intent = None, None, None
        self.last_confidence, self.last_in_scope = 0.0, 1.0
        self.last_slots, self.pending_slots = [], []

    def add_turn(self, role: str, text: str) -> None:
        self.turns = (self.turns + [{"role": role, "text": text}])[-MAX_TURNS:]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(**data)


class SessionStore(Protocol):
    """Where sessions live between messages."""

    def get(self, session_id: str) -> Session | None:
        """The session, or None when unknown or expired."""
        ...

    def put(self, session: Session) -> None:
        """Saves the session and renews its time to live."""
        ...

    def delete(self, session_id: str) -> None: ...


class InMemorySessionStore:
    """A thread-safe dict with a time to live per session and a cap on their number (LRU)."""

    def __init__(
        self,
        ttl_s: float = 1800.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.max_sessions, self.clock = ttl_s, max_sessions, clock
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            item = self._data.get(session_id)
            if item is None:
                return None
            if item[0] < self.clock():
                del self._data[session_id]
                return None
            return Session.from_dict(
                copy.deepcopy(item[1])
            )  # a copy: callers mutate it, then `put` it back

    def put(self, session: Session) -> None:
        with self._lock:
            self._data[session.session_id] = (self.clock() + self.ttl_s, session.to_dict())
            self._data.move_to_end(session.session_id)
            while len(self._data) > self.max_sessions:
                self._data.popitem(last=False)

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._data.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._data)


class SessionLocks:
    """One lock per session with messages in flight, dropped when its last message is done.

    Memory stays bounded by the messages being answered, not by the sessions ever seen. Async
    waiters are served in arrival order (`asyncio.Lock` is fair); threads waiting on one session
    may be served in any order. `hold` serves threads (the CLI, `predict`), `hold_async` the
    coroutines of the service's event loop; the two are not meant to serve one session at the
    same time. Within one process only: service processes sharing a session store need a lock
    in that store.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        # session id -> [lock, messages holding or waiting for it]
        self._threads: dict[str, list[Any]] = {}
        self._tasks: dict[str, list[Any]] = {}

    @contextlib.contextmanager
    def hold(self, session_id: str) -> Iterator[None]:
        """`with locks.hold(session_id):` one message of the session at a time (threads)."""
        lock = self._enter(self._threads, session_id, threading.Lock)
        try:
            with lock:
                yield
        finally:
            self._leave(self._threads, session_id)

    @contextlib.asynccontextmanager
    async def hold_async(self, session_id: str) -> AsyncIterator[None]:
        """`async with locks.hold_async(session_id):` the same for coroutines of one event loop."""
        lock = self._enter(self._tasks, session_id, asyncio.Lock)
        try:
            async with lock:
                yield
        finally:
            self._leave(self._tasks, session_id)

    def _enter(self, table: dict[str, list[Any]], session_id: str, new: Callable[[], Any]) -> Any:
        with self._guard:
            entry = table.setdefault(session_id, [new(), 0])
            entry[1] += 1
            return entry[0]

    def _leave(self, table: dict[str, list[Any]], session_id: str) -> None:
        with self._guard:
            entry = table[session_id]
            entry[1] -= 1
            if entry[1] == 0:
                del table[session_id]

    def __len__(self) -> int:
        """Sessions with a message being answered or waiting."""
        return len(self._threads) + len(self._tasks)


def extract_slots(text: str, slot_values: dict[str, list[str]]) -> dict[str, str]:
    """Slot values mentioned in `text` (whole words, case-insensitive); the first mention wins."""
    found = {}
    lowered = text.lower()
    for slot, values in slot_values.items():
        positions = [
            (m.start(), v)
            for v in values
            for m in re.finditer(rf"\b{re.escape(v.lower())}\b", lowered)
        ]
        if positions:
            found[slot] = min(positions)[1]
    return found


def is_follow_up(
    text: str, slot_values: dict[str, list[str]], topic_slots: list[str] | tuple[str, ...]
) -> bool:
    """Whether a message refers to the previous topic, so it is also read in its context.

    It does when it names a value of a slot the previous answer uses ("and for my credit
    card?", "credit one" after the freeze-card answer), briefly or after a follow-up opener, or
    when it is short and points back with a pronoun ("how long does it take?"). Being short is
    not enough: "what about savings?" after the activate-card answer (which has no account slot)
    is a new question, and "ok thanks" is a dialogue act.

    Args:
        text: The message.
        slot_values: Slot name -> known values (the artifact's `slots`).
        topic_slots: Slots of the previous answer's template.
    """
    words = len(text.split())
    topical = {s: v for s, v in slot_values.items() if s in topic_slots}
    if extract_slots(text, topical) and (
        words <= MAX_SLOT_FOLLOW_UP_WORDS or _FOLLOW_UP.match(text)
    ):
        return True
    return words <= MAX_ANAPHORA_FOLLOW_UP_WORDS and bool(_ANAPHORA.search(text))


def template_slots(template: str) -> list[str]:
    """Slot names in a template, in order, without repeats."""
    return list(dict.fromkeys(re.findall(r"\{(\w+)\}", template)))


def fill_template(template: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Fills `{slot}` placeholders; returns the text and the slots still missing (left out)."""
    missing = [s for s in template_slots(template) if s not in values]
    text = template
    for slot in template_slots(template):
        text = text.replace("{" + slot + "}", values.get(slot, ""))
    return re.sub(r"\s{2,}", " ", text).strip(), missing
