"""Conversation memory: a `SessionStore` interface, an in-memory TTL store, and slot extraction.

A shared store (Redis, a database) implements the same three methods and stores
`Session.to_dict()` as JSON; nothing else in the bot needs to change.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

MAX_TURNS = 20
_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|same (for|with)|for (my|the)|what if|then|ok and|okay and|plus)\b",
    re.I,
)


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


def is_follow_up(text: str) -> bool:
    """Whether a message leans on the previous one ("and for my credit card?")."""
    return bool(_FOLLOW_UP.match(text)) or len(text.split()) <= 3


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
