"""Claude Code hook events: what `engram record --hook claude-code` records from the JSON on stdin.

Claude Code runs hook commands with a JSON object on stdin. UserPromptSubmit carries the user's `prompt`;
Stop carries `last_assistant_message` (recent versions) and always `transcript_path`, a JSONL file whose
assistant entries hold the reply. Both carry `session_id`, which becomes the conversation's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engram.storage.errors import InvalidInputError

HOOKS = ("claude-code",)


@dataclass(frozen=True)
class HookMessage:
    conversation: str | None
    role: str
    text: str


def claude_code_message(payload_text: str) -> HookMessage | None:
    """The message a Claude Code hook event carries, or None for events (or empty replies) with nothing to record."""
    try:
        payload = json.loads(payload_text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"the hook's input on stdin is not JSON ({exc.msg}); is this a Claude Code hook?"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidInputError("the hook's input on stdin is not a JSON object; is this a Claude Code hook?")
    event = payload.get("hook_event_name")
    session = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    if event == "UserPromptSubmit":
        prompt = payload.get("prompt")
        return HookMessage(session, "user", prompt) if isinstance(prompt, str) and prompt.strip() else None
    if event == "Stop":
        reply = payload.get("last_assistant_message")
        if not isinstance(reply, str) or not reply.strip():
            transcript = payload.get("transcript_path")
            reply = last_reply(Path(transcript).expanduser()) if isinstance(transcript, str) else ""
        return HookMessage(session, "assistant", reply) if reply.strip() else None
    return None


def last_reply(transcript: Path) -> str:
    """The text of the assistant's entries after the last prompt the user typed, from a Claude Code transcript."""
    try:
        lines = transcript.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the transcript {transcript}: {exc.strerror}") from None
    parts: list[str] = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written as we read
        if not isinstance(entry, dict) or not isinstance(entry.get("message"), dict):
            continue
        content = entry["message"].get("content")
        if entry.get("type") == "user" and _typed_by_user(content):
            parts = []
        elif entry.get("type") == "assistant":
            parts.extend(_texts(content))
    return "\n\n".join(part for part in parts if part.strip())


def _typed_by_user(content: Any) -> bool:
    """A user entry holding text (a prompt), not only tool results."""
    return isinstance(content, str) or (isinstance(content, list) and any(_texts(content)))


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [
        block["text"]
        for block in content
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
