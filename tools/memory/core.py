"""Core memory: the blocks that stay in the agent's context, with Letta's edit tools, their history and undo.

Every edit runs in one transaction that row-locks the block, checks it, writes the previous value to
block_history and stores the new value, so concurrent edits from several clients never lose an update.
A block attached to several agents is one row: an edit through any of them is seen by all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from engram.storage.errors import InvalidEditError, InvalidInputError, LimitExceededError, NotFoundError, ReadOnlyError
from engram.tools.arguments import AgentArg, check_label, check_text
from engram.tools.memory.agents import resolve_agent_ref
from engram.tools.memory.render import cut, render_core_memory
from engram.tools.repositories import block_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage.agents import AgentRef
    from engram.storage.schema import Block

Label = Annotated[str, Field(description="Label of the block, e.g. 'human' or 'persona'.", max_length=50)]

MAX_HISTORY = 50
HISTORY_CHARS = 6000  # the texts of one history answer together, so it never floods the host


class BlockView(BaseModel):
    """A block after an edit."""

    agent: str
    label: str
    value: str
    chars_current: int
    chars_limit: int
    version: int


def _view(agent_name: str, block: Block) -> BlockView:
    return BlockView(
        agent=agent_name,
        label=block.label,
        value=block.value,
        chars_current=len(block.value),
        chars_limit=block.char_limit,
        version=block.version,
    )


async def core_memory_view(scope: Scope, agent: AgentArg = None) -> str:
    """Show the agent's core memory blocks as they appear in its context, with their sizes and limits."""
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        blocks = await block_repo.of_agent(session, scope.owner_id, agent_row.id)
    return render_core_memory(agent_row.name, blocks)


async def read_block(scope: Scope, agent: str | None, label: str) -> Block:
    check_label(label)
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        block = await block_repo.get(session, scope.owner_id, agent_row.id, label)
        if block is None:
            raise await _missing_block(session, scope, agent_row.id, agent_row.name, label)
    return block


async def _missing_block(
    session: AsyncSession, scope: Scope, agent_id: uuid.UUID, agent_name: str, label: str
) -> NotFoundError:
    labels = [b.label for b in await block_repo.of_agent(session, scope.owner_id, agent_id)]
    known = ", ".join(f"'{name}'" for name in labels) or "none"
    return NotFoundError(f"agent '{agent_name}' has no block '{label}'; its blocks are: {known}")


async def _lock_editable(session: AsyncSession, scope: Scope, agent: str | None, label: str) -> tuple[AgentRef, Block]:
    """The agent's block, row-locked until the transaction ends; refused if it is read-only."""
    agent_row = await resolve_agent_ref(session, scope, agent)
    block = await block_repo.lock_for_edit(session, scope.owner_id, agent_row.id, label)
    if block is None:
        raise await _missing_block(session, scope, agent_row.id, agent_row.name, label)
    if block.read_only:
        raise ReadOnlyError(f"block '{label}' of agent '{agent_row.name}' is read-only; it cannot be edited")
    return agent_row, block


async def _edit(scope: Scope, agent: str | None, label: str, actor: str, change: Callable[[str], str]) -> BlockView:
    """Apply `change` to the block's current value under a row lock, enforce the limit, record history."""
    check_label(label)
    async with scope.sessions.begin() as session:
        agent_row, block = await _lock_editable(session, scope, agent, label)
        new_value = change(block.value)
        if len(new_value) > block.char_limit:
            raise LimitExceededError(
                f"block '{label}' would hold {len(new_value)} characters, over its limit of {block.char_limit} "
                f"(it holds {len(block.value)} now); shorten the text, or make room first with "
                "core_memory_replace or memory_rethink"
            )
        if new_value != block.value:
            await block_repo.write_value(session, block, new_value, actor)
        return _view(agent_row.name, block)


async def core_memory_append(
    scope: Scope,
    label: Label,
    content: Annotated[str, Field(description="Text to add as a new line at the end of the block.")],
    agent: AgentArg = None,
) -> BlockView:
    """Append a line to a core memory block, e.g. a new fact about the user to 'human'.

    Fails, leaving the block unchanged, if the result would exceed the block's character limit.
    """
    check_text("content", content, max_chars=scope.max_input_chars)

    def change(value: str) -> str:
        kept = _written(scope, label, value)
        return f"{kept}\n{content}" if kept else content

    return await _edit(scope, agent, label, "core_memory_append", change)


def _written(scope: Scope, label: str, value: str) -> str:
    """The block's text, or '' while a 'human' block still holds the placeholder it was made with (the first
    fact written replaces it)."""
    return "" if label == "human" and value == scope.defaults.human else value


async def core_memory_replace(
    scope: Scope,
    label: Label,
    old_content: Annotated[str, Field(description="Exact text to find in the block (every occurrence).")],
    new_content: Annotated[str, Field(description="Replacement text; an empty string deletes old_content.")],
    agent: AgentArg = None,
) -> BlockView:
    """Replace every occurrence of exact text in a core memory block; an empty new_content deletes it."""
    check_text("old_content", old_content, max_chars=scope.max_input_chars)
    check_text("new_content", new_content, max_chars=scope.max_input_chars, allow_empty=True)

    def change(value: str) -> str:
        if old_content not in value:
            raise InvalidEditError(
                f"block '{label}' has no text {_quote(old_content)}; call core_memory_view to see its current value"
            )
        return value.replace(old_content, new_content)

    return await _edit(scope, agent, label, "core_memory_replace", change)


async def memory_insert(
    scope: Scope,
    label: Label,
    new_str: Annotated[str, Field(description="Text to insert (may span several lines).")],
    insert_line: Annotated[
        int, Field(description="Line number to insert after: 0 inserts at the beginning, -1 at the end.", ge=-1)
    ] = -1,
    agent: AgentArg = None,
) -> BlockView:
    """Insert text into a core memory block after a given line (0 = at the top, -1 = at the end)."""
    check_text("new_str", new_str, max_chars=scope.max_input_chars)

    def change(value: str) -> str:
        kept = _written(scope, label, value)
        lines = kept.split("\n") if kept else []
        position = len(lines) if insert_line == -1 else insert_line
        if position > len(lines):
            raise InvalidEditError(
                f"insert_line {insert_line} is past the end of block '{label}', which has {len(lines)} lines; "
                f"use a number from 0 to {len(lines)}, or -1 for the end"
            )
        return "\n".join(lines[:position] + new_str.split("\n") + lines[position:])

    return await _edit(scope, agent, label, "memory_insert", change)


async def memory_replace(
    scope: Scope,
    label: Label,
    old_str: Annotated[str, Field(description="Exact text to replace; it must occur exactly once in the block.")],
    new_str: Annotated[str, Field(description="Replacement text; an empty string deletes old_str.")],
    agent: AgentArg = None,
) -> BlockView:
    """Replace text that occurs exactly once in a core memory block (fails if it is missing or ambiguous)."""
    check_text("old_str", old_str, max_chars=scope.max_input_chars)
    check_text("new_str", new_str, max_chars=scope.max_input_chars, allow_empty=True)

    def change(value: str) -> str:
        count = value.count(old_str)
        if count == 0:
            raise InvalidEditError(
                f"block '{label}' has no text {_quote(old_str)}; call core_memory_view to see its current value"
            )
        if count > 1:
            lines = [n for n, line in enumerate(value.split("\n"), start=1) if old_str in line]
            raise InvalidEditError(
                f"{_quote(old_str)} occurs {count} times in block '{label}' (lines {lines}); include more "
                "surrounding text so it is unique, or use core_memory_replace to replace every occurrence"
            )
        return value.replace(old_str, new_str)

    return await _edit(scope, agent, label, "memory_replace", change)


async def memory_rethink(
    scope: Scope,
    label: Label,
    new_memory: Annotated[str, Field(description="The block's complete new text; replaces all of it.")],
    agent: AgentArg = None,
) -> BlockView:
    """Rewrite a core memory block completely, to reorganise or condense it. The old value is kept in history."""
    if not new_memory.strip():
        raise InvalidEditError(
            f"'new_memory' is empty, which would erase block '{label}'; pass the block's complete new text (to "
            "remove text, use memory_replace with new_str '')"
        )
    check_text("new_memory", new_memory, max_chars=scope.max_input_chars)
    return await _edit(scope, agent, label, "memory_rethink", lambda _value: new_memory)


class BlockVersion(BaseModel):
    version: int
    value: str = Field(description="The block's text at this version (shortened with '…' when long).")
    chars: int = Field(description="Length of the whole text.")
    actor: str = Field(
        description="What made this version: a tool (e.g. 'core_memory_append'), a command, or 'created'."
    )
    created_at: datetime | None


class BlockVersions(BaseModel):
    agent: str
    label: str
    block_id: str
    versions: list[BlockVersion] = Field(description="Newest first: the first is the block's current text.")
    older: int = Field(description="How many earlier versions are not shown (ask with a higher limit).")


async def core_memory_history(
    scope: Scope,
    label: Label,
    agent: AgentArg = None,
    limit: Annotated[int, Field(ge=1, le=MAX_HISTORY, description="How many versions to show, newest first.")] = 10,
) -> BlockVersions:
    """Show a core memory block's versions, newest first: each one's text, what made it, and when.

    core_memory_undo brings back the previous version.
    """
    return await block_versions(
        scope, agent, label, limit, chars=max(100, min(scope.result_chars, HISTORY_CHARS // max(limit, 1)))
    )


async def block_versions(
    scope: Scope, agent: str | None, label: str, limit: int, *, chars: int | None
) -> BlockVersions:
    """The block's newest `limit` versions, each text cut to `chars` (None: whole, for a diff in the web UI)."""
    check_label(label)
    if not 1 <= limit <= MAX_HISTORY:
        raise InvalidInputError(f"limit {limit} is not valid; show 1 to {MAX_HISTORY} versions")
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        block = await block_repo.get(session, scope.owner_id, agent_row.id, label)
        if block is None:
            raise await _missing_block(session, scope, agent_row.id, agent_row.name, label)
        versions, older = await block_repo.versions(session, scope.owner_id, block, limit=limit)
    return BlockVersions(
        agent=agent_row.name,
        label=label,
        block_id=str(block.id),
        versions=[
            BlockVersion(
                version=version.version,
                value=version.value if chars is None else cut(version.value, chars),
                chars=len(version.value),
                actor=version.actor,
                created_at=version.created_at,
            )
            for version in versions
        ],
        older=older,
    )


async def core_memory_undo(scope: Scope, label: Label, agent: AgentArg = None) -> BlockView:
    """Undo the last change to a core memory block: its previous text comes back, as a new version.

    Undoing again brings back what the undo replaced. core_memory_history shows every version.
    """
    return await undo(scope, agent, label, actor="core_memory_undo")


async def undo(scope: Scope, agent: str | None, label: str, *, actor: str) -> BlockView:
    """`core_memory_undo` for every door; `actor` (the tool or command) goes into the block's history."""
    check_label(label)
    async with scope.sessions.begin() as session:
        agent_row, block = await _lock_editable(session, scope, agent, label)
        previous = await block_repo.version_of(session, block, block.version - 1)
        if previous is None:
            raise InvalidEditError(
                f"block '{label}' of agent '{agent_row.name}' has no earlier version to go back to (it is at "
                f"version {block.version}); nothing to undo"
            )
        if len(previous.value) > block.char_limit:
            raise LimitExceededError(
                f"version {previous.version} of block '{label}' holds {len(previous.value)} characters, over the "
                f"block's limit of {block.char_limit}, so it cannot come back as it was; rewrite the block with "
                "memory_rethink instead"
            )
        await block_repo.write_value(session, block, previous.value, actor)
        return _view(agent_row.name, block)


def _quote(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
