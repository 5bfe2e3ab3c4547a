"""Scripted conversation tests, as Rasa's test stories: YAML turns with what the bot must do.

`verticals evaluate customer_service --artifact DIR --conversations FILE` plays each
conversation in a fresh session and checks every turn::

    conversations:
      - name: activate card, then small talk
        turns:
          - user: how do I activate my card
            intent: activate_card
          - user: hello
            act: greet
          - user: agent please
            act: human
            handoff: true

A turn holds `user` (the message) and any of: `intent`, `answer_id`, `act` (`none` for a
question), `handoff`, `context_used` and `answer_contains` (text the reply must include,
case-insensitive). A turn passes when every expectation it states holds; a conversation passes
when all its turns do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import DataError
from shared.reports import EvaluationReport

CHECKED = ("intent", "answer_id", "act", "handoff", "context_used", "answer_contains")


class Turn(BaseModel):
    """One user message and what the bot's reply must show."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1)
    intent: str | None = None
    answer_id: str | None = None
    act: str | None = None
    handoff: bool | None = None
    context_used: bool | None = None
    answer_contains: str | None = None

    @field_validator("user", mode="before")
    @classmethod
    def _a_message(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(
                f'YAML read this message as {str(value).lower()}; quote it (user: "yes")'
            )
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError("the message is empty")
        return value

    def expected(self) -> dict[str, Any]:
        """The expectations this turn states, by field."""
        return {k: getattr(self, k) for k in CHECKED if getattr(self, k) is not None}


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    turns: list[Turn] = Field(min_length=1)


class ConversationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversations: list[Conversation] = Field(min_length=1)


def _where(path: Path, raw: Any, loc: tuple) -> str:
    """`conversation 2 ("greeting"), turn 3, field 'act'` for a validation error's location."""
    parts = []
    if len(loc) >= 2 and loc[0] == "conversations" and isinstance(loc[1], int):
        name = ""
        try:
            name = raw["conversations"][loc[1]].get("name") or ""
        except (AttributeError, IndexError, KeyError, TypeError):
            pass
        parts.append(f"conversation {loc[1] + 1}" + (f" ({name!r})" if name else ""))
        loc = loc[2:]
        if len(loc) >= 2 and loc[0] == "turns" and isinstance(loc[1], int):
            parts.append(f"turn {loc[1] + 1}")
            loc = loc[2:]
    if loc:
        parts.append("field " + ".".join(repr(p) if isinstance(p, str) else str(p) for p in loc))
    return f"{path}: " + ", ".join(parts) if parts else str(path)


def load_conversations(path: str | Path) -> list[Conversation]:
    """Reads and validates a conversation-test file.

    Raises:
        DataError: one line naming the file, the conversation, the turn and the field (bad YAML,
            an unknown key, a missing or empty message...).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: conversation-test file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DataError(f"{path}: not valid YAML{where}: {problem}") from None
    if isinstance(raw, list):  # a bare list of conversations is accepted too
        raw = {"conversations": raw}
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping with a 'conversations' list")
    try:
        return ConversationFile.model_validate(raw).conversations
    except ValidationError as exc:
        err = exc.errors()[0]
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] == "extra_forbidden":
            message += f" (known: {', '.join(['user', *CHECKED])})"
        more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
        raise DataError(f"{_where(path, raw, tuple(err['loc']))}: {message}{more}") from None


def check_turn(turn: Turn, reply: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The expectations a reply misses: field -> (expected, got)."""
    got = {
        "intent": reply.get("intent"),
        "answer_id": reply.get("answer_id"),
        "act": reply.get("act") or "none",
        "handoff": bool(reply.get("handoff")),
        "context_used": bool(reply.get("context_used")),
        "answer_contains": reply.get("answer", ""),
    }
    missed = {}
    for key, want in turn.expected().items():
        if key == "answer_contains":
            if want.lower() not in got[key].lower():
                missed[key] = (want, got[key])
        elif got[key] != want:
            missed[key] = (want, got[key])
    return missed


def run_conversations(runtime: Any, path: str | Path) -> EvaluationReport:
    """Plays every conversation of a test file in a fresh session; a report of the failed turns.

    `runtime` needs `chat(session_id, message)` (a `CustomerServiceBot`). Metrics: conversations,
    turns, failed turns, turn and conversation accuracy; `errors` has a row per failed turn.
    """
    conversations = load_conversations(path)
    errors, n_turns, passed_conversations = [], 0, 0
    for c, conversation in enumerate(conversations):
        session_id = f"conversation-test-{c}"
        failed_here = 0
        for t, turn in enumerate(conversation.turns):
            reply = runtime.chat(session_id, turn.user)
            missed = check_turn(turn, reply)
            n_turns += 1
            if missed:
                failed_here += 1
                errors.append(_error_row(conversation.name, t, turn, reply, missed))
        passed_conversations += failed_here == 0
    n_failed = len(errors)
    metrics: dict[str, float | int] = {
        "conversation_accuracy": passed_conversations / len(conversations),
        "turn_accuracy": (n_turns - n_failed) / n_turns,
        "n_conversations": len(conversations),
        "n_turns": n_turns,
        "n_failed": n_failed,
        "n_failed_conversations": len(conversations) - passed_conversations,
    }
    return EvaluationReport(
        metrics=metrics,
        descriptions={
            "conversation_accuracy": "conversations whose every turn passed / all conversations",
            "turn_accuracy": "turns meeting every expectation they state / all turns",
            "n_failed": "turns that missed an expectation (listed in errors.csv)",
        },
        errors=errors,
        primary="conversation_accuracy",
    )


def _error_row(
    name: str, t: int, turn: Turn, reply: dict[str, Any], missed: dict[str, tuple[Any, Any]]
) -> dict[str, Any]:
    return {
        "conversation": name,
        "turn": t + 1,
        "input": turn.user,
        "expected": "; ".join(f"{k}={w!r}" for k, (w, _) in missed.items()),
        "predicted": "; ".join(f"{k}={g!r}" for k, (_, g) in missed.items()),
        "confidence": reply.get("confidence"),
        "intent": reply.get("intent"),
        "answer_id": reply.get("answer_id"),
        "act": reply.get("act"),
        "handoff": reply.get("handoff"),
        "answer": reply.get("answer"),
    }
