"""What the built-in agent sees: its system message (prompt, core memory, statistics, summary) and its messages.

Stored messages keep the OpenAI chat shape in their content JSON (text, tool_calls, tool_call_id, name); here
they become chat messages again. A tool call is only shown with its result (providers reject one without
the other), and messages a host recorded in roles a chat model cannot take mid-conversation become notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engram.tools.loop.llm import ChatMessage
from engram.tools.memory.render import render_core_memory

if TYPE_CHECKING:
    from engram.storage.schema import Block, Message

DEFAULT_SYSTEM_PROMPT = """\
You are a helpful assistant with a long-term memory (Engram, after MemGPT/Letta). Your context is limited, \
so your memory has tiers:
- Core memory (below) is always in view. Edit it with core_memory_append, core_memory_replace, memory_insert, \
memory_replace and memory_rethink: keep what you learn about the user in 'human' and about yourself in \
'persona', as soon as you learn it.
- Archival memory holds long-term notes and documents: store with archival_memory_insert, find with \
archival_memory_search.
- Recall memory holds every past message, including those no longer in your context: find them with \
conversation_search.
When older messages leave your context, a summary of them appears below. Use the tools silently, then \
answer the user: your reply without tool calls is what the user sees."""


@dataclass(frozen=True)
class MemoryStats:
    passages: int
    messages: int
    out_of_context: int  # messages of this conversation before the in-context window


def system_message(
    agent_name: str,
    prompt: str,
    blocks: Sequence[Block],
    stats: MemoryStats,
    summary: str | None,
) -> ChatMessage:
    parts = [
        prompt or DEFAULT_SYSTEM_PROMPT,
        render_core_memory(agent_name, blocks),
        "<memory_metadata>\n"
        f"- {stats.passages} passages in archival memory (archival_memory_search)\n"
        f"- {stats.messages} messages in recall memory (conversation_search)\n"
        f"- {stats.out_of_context} earlier messages of this conversation are out of your context\n"
        "</memory_metadata>",
    ]
    if summary:
        parts.append(f"<summary>\nSummary of the earlier part of this conversation:\n{summary}\n</summary>")
    return {"role": "system", "content": "\n\n".join(parts)}


def row_message(row: Message) -> ChatMessage:
    """One stored message in chat form, as it is counted (tool calls included)."""
    content: dict[str, Any] = row.content or {}
    message: ChatMessage = {"role": row.role, "content": content.get("text", row.text)}
    if content.get("tool_calls"):
        message["tool_calls"] = content["tool_calls"]
    if row.role == "tool" and content.get("tool_call_id"):
        message["tool_call_id"] = content["tool_call_id"]
        message["name"] = content.get("name", "")
    return message


def chat_messages(rows: Sequence[Message]) -> list[ChatMessage]:
    """The in-context messages as a valid chat: every shown tool call followed by its result."""
    chat: list[ChatMessage] = []
    index = 0
    while index < len(rows):
        row = rows[index]
        content: dict[str, Any] = row.content or {}
        if row.role == "assistant" and content.get("tool_calls"):
            after = index + 1
            answers: dict[str, Message] = {}
            while after < len(rows) and rows[after].role == "tool":
                answers[str((rows[after].content or {}).get("tool_call_id"))] = rows[after]
                after += 1
            calls = [call for call in content["tool_calls"] if call.get("id") in answers]
            message: ChatMessage = {"role": "assistant", "content": content.get("text") or None}
            if calls:
                message["tool_calls"] = calls
            if calls or message["content"]:
                chat.append(message)
            for call in calls:
                answer = answers.pop(call["id"])
                chat.append(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "name": call["function"]["name"],
                        "content": answer.text,
                    }
                )
            chat.extend(_note(answer) for answer in answers.values())
            index = after
            continue
        chat.append(_note(row) if row.role in ("tool", "system") else {"role": row.role, "content": row.text})
        index += 1
    return chat


def _note(row: Message) -> ChatMessage:
    return {"role": "user", "content": f"[{row.role} note] {row.text}"}


def transcript_line(row: Message, limit: int = 1500) -> str:
    """A message as one line of the transcript the summarizer reads."""
    content: dict[str, Any] = row.content or {}
    text = row.text if len(row.text) <= limit else row.text[:limit] + "…"
    if row.role == "tool":
        return f"tool result ({content.get('name', 'tool')}): {text}"
    calls = content.get("tool_calls") or []
    called = "; ".join(f"{call['function']['name']}({call['function']['arguments'][:300]})" for call in calls)
    if row.role == "assistant" and called:
        return f"assistant: {content.get('text') or ''} [called {called}]".replace(":  [", ": [")
    return f"{row.role}: {text}"
