"""Core memory rendered as the agent sees it in its context (Letta's layout, so Letta prompts still fit)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engram.storage.schema import Block


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` - 1 characters and '…' when it is longer than `limit`."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_block(block: Block) -> str:
    lines = [f"<{block.label}>"]
    if block.description:
        lines.append(f"<description>\n{block.description}\n</description>")
    lines.append("<metadata>")
    if block.read_only:
        lines.append("- read_only=true")
    lines.append(f"- chars_current={len(block.value)}")
    lines.append(f"- chars_limit={block.char_limit}")
    lines.append("</metadata>")
    lines.append(f"<value>\n{block.value}\n</value>")
    lines.append(f"</{block.label}>")
    return "\n".join(lines)


def render_core_memory(agent_name: str, blocks: Iterable[Block]) -> str:
    body = "\n".join(render_block(block) for block in blocks)
    return (
        f'<memory_blocks agent="{agent_name}">\n'
        "The following memory blocks are currently engaged in your core memory unit:\n\n"
        f"{body}\n"
        "</memory_blocks>"
    )
