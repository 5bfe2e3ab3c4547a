"""`verticals chat customer_service --artifact DIR`: talk to the bot in the terminal (like `rasa shell`).

Each reply is followed by what the bot read: the dialogue act or the intent and answer, the
confidence, whether the context was used, and whether (and why) it handed off. Lines are read
until end of input or `/quit`; `/restart` starts a new session. Piped input works, so a
conversation can be scripted: `printf 'hello\\nagent please\\n' | verticals chat ...`.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from typing import Any

import typer

HELP = "Type a message; /restart starts a new conversation, /quit (or Ctrl-D) leaves."


def read_line(prompt: str) -> str:
    """A line from the terminal after `prompt`; from a pipe, the line is echoed after the prompt
    so the transcript reads as a conversation. Raises EOFError at the end of input."""
    if sys.stdin.isatty():
        return input(prompt)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    typer.echo(f"{prompt}{line.rstrip()}")
    return line


def describe(reply: dict[str, Any]) -> str:
    """The one-line reading of a reply: act or intent, confidence, context and handoff."""
    if reply.get("act"):
        read = f"act={reply['act']}"
    else:
        read = f"intent={reply.get('intent') or '-'} answer={reply.get('answer_id') or '-'}"
    parts = [read, f"confidence={reply.get('confidence', 0.0):.2f}"]
    if reply.get("context_used"):
        parts.append("context=yes")
    if reply.get("missing_slots"):
        parts.append(f"asks={','.join(reply['missing_slots'])}")
    handoff = "yes" if reply.get("handoff") else "no"
    if reply.get("handoff") and reply.get("handoff_reason"):
        handoff += f" ({reply['handoff_reason']})"
    parts.append(f"handoff={handoff}")
    return "  [" + " ".join(parts) + "]"


def run_shell(
    runtime: Any,
    read: Callable[[str], str] = read_line,
    echo: Callable[[str], None] = typer.echo,
) -> int:
    """Reads messages until EOF or `/quit`, printing each reply and its reading; returns the count.

    Args:
        runtime: A loaded `CustomerServiceBot` (anything with `chat(session_id, message)`).
        read: Reads one line after a prompt (raises EOFError at the end of input).
        echo: Writes one line.
    """
    session_id = f"shell-{uuid.uuid4().hex[:8]}"
    echo(HELP)
    answered = 0
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            if sys.stdin.isatty():
                echo("")
            break
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/restart":
            session_id = f"shell-{uuid.uuid4().hex[:8]}"
            echo("(new conversation)")
            continue
        reply = runtime.chat(session_id, line)
        answered += 1
        echo(f"bot> {reply['answer']}")
        echo(describe(reply))
    return answered
