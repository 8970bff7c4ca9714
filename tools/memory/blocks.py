"""Shared blocks: a principal's blocks as things of their own, made, listed, attached to agents and deleted.

An agent's core memory is the blocks attached to it. One block attached to several agents is one text: an edit
made through any of them is seen by all. A block is named by its id, or by its label when it is the only one
of the caller's blocks with that label.

Blocks made here are standalone: they stay when the agents they are attached to are deleted, until
`block_delete`. Blocks made with an agent (`agent_create`) go with the last agent that uses them.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from engram.storage.errors import ConflictError, InvalidInputError, LimitExceededError, NotFoundError, ReadOnlyError
from engram.tools.arguments import LABEL_PATTERN, check_label, check_page, check_text
from engram.tools.memory.agents import resolve_agent_ref
from engram.tools.memory.render import cut
from engram.tools.repositories import block_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage.schema import Block

MAX_PAGE_SIZE = 100
MAX_LIMIT = 1_000_000
LIST_CHARS = 8000  # previews and descriptions of one page together, so a listing never floods the host
SHOWN_CHARS = 200  # the longest preview or description shown
AGENTS_SHOWN = 20  # agent names per block; agent_count has them all
CANDIDATES_SHOWN = 5  # blocks named in the error when a label is ambiguous

BlockRef = Annotated[
    str,
    Field(
        description="The block: its id (from block_list or block_create), or its label when only one of your "
        "blocks has that label.",
        max_length=100,
    ),
]
AgentName = Annotated[str, Field(description="Name of the agent.", max_length=100)]


class BlockInfo(BaseModel):
    """A block, the agents it is attached to, and the start of its text."""

    id: str
    label: str
    description: str = Field(description="What the block is for (shortened with '…' when long).")
    preview: str = Field(description="The start of the block's text (shortened with '…' when long).")
    chars_current: int
    chars_limit: int
    read_only: bool
    version: int
    standalone: bool = Field(
        description="Made with block_create: kept when the agents it is attached to are deleted, until block_delete."
    )
    agents: list[str] = Field(description=f"Agents it is attached to, by name (the first {AGENTS_SHOWN}).")
    agent_count: int


class BlockPage(BaseModel):
    blocks: list[BlockInfo]
    total: int
    page: int
    page_size: int
    next_page: int | None = Field(description="The page to ask for next, or null on the last page.")


class BlockDeleted(BaseModel):
    id: str
    label: str
    detached_from: list[str] = Field(description="Agents that had it attached (it is gone from their memory).")


async def block_create(
    scope: Scope,
    label: Annotated[str, Field(description="Block label, e.g. 'team' (letters, digits, '_', '.', '-').")],
    value: Annotated[str, Field(description="Initial text of the block.")] = "",
    limit: Annotated[
        int | None, Field(ge=1, le=MAX_LIMIT, description="Character limit; the server's default if omitted.")
    ] = None,
    description: Annotated[str, Field(max_length=2000, description="What the block is for, shown to agents.")] = "",
    read_only: Annotated[bool, Field(description="If true, no tool may edit the block's text.")] = False,
) -> BlockInfo:
    """Create a standalone block, to attach to one or more agents with block_attach (all of them share its text).

    It is attached to no agent yet, and stays until block_delete even when those agents are deleted.
    """
    check_label(label)
    check_text("value", value, max_chars=scope.max_input_chars, allow_empty=True)
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit {limit} is not valid; use 1 to {MAX_LIMIT} characters")
    char_limit = limit or scope.defaults.block_char_limit
    if len(value) > char_limit:
        raise InvalidInputError(
            f"block '{label}' starts with {len(value)} characters, over its limit of {char_limit}; "
            "shorten the value or raise the block's limit"
        )
    async with scope.sessions.begin() as session:
        block = await block_repo.create(
            session,
            scope.owner_id,
            label=label,
            value=value,
            char_limit=char_limit,
            description=description,
            read_only=read_only,
            standalone=True,
        )
        return await _info(session, scope, block)


async def block_list(
    scope: Scope,
    label: Annotated[str | None, Field(description="Only blocks with this label.", max_length=50)] = None,
    page: Annotated[int, Field(ge=1, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="Blocks per page.")] = 20,
) -> BlockPage:
    """List your blocks, by label: their ids, sizes, and the agents each is attached to."""
    if label is not None:
        check_label(label)
    shown = max(40, min(SHOWN_CHARS, LIST_CHARS // (2 * page_size)))
    async with scope.sessions.begin() as session:
        rows, total = await block_repo.list_page(
            session, scope.owner_id, label=label, offset=(check_page(page) - 1) * page_size, limit=page_size
        )
        attached = await block_repo.agents_of(session, scope.owner_id, [row.id for row in rows])
    return BlockPage(
        blocks=[block_info(row, attached[row.id], shown) for row in rows],
        total=total,
        page=page,
        page_size=page_size,
        next_page=page + 1 if page * page_size < total else None,
    )


async def block_attach(scope: Scope, agent: AgentName, block: BlockRef) -> BlockInfo:
    """Attach a block to an agent's core memory. A block attached to several agents is shared: an edit made
    through one is seen by all. An agent has one block per label: detach its block of that label first.
    """
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        found = await resolve_block(session, scope, block)
        if not await block_repo.link(session, agent_row.id, found):
            holder = await block_repo.get(session, scope.owner_id, agent_row.id, found.label)
            if holder is None or holder.id != found.id:
                which = f" (id {holder.id})" if holder is not None else ""
                raise ConflictError(
                    f"agent '{agent_row.name}' already has a block '{found.label}'{which}; an agent has one block "
                    "per label: detach that one first with block_detach"
                )
        return await _info(session, scope, found)


async def block_detach(scope: Scope, agent: AgentName, block: BlockRef) -> BlockInfo:
    """Detach a block from an agent's core memory. The block itself stays (see block_list), as do the other
    agents' links to it."""
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        found = await resolve_block(session, scope, block)
        if not await block_repo.unlink(session, scope.owner_id, agent_row.id, found.id):
            raise NotFoundError(
                f"block '{found.label}' ({found.id}) is not attached to agent '{agent_row.name}'; call block_list "
                "to see which agents it is attached to"
            )
        return await _info(session, scope, found)


async def block_delete(scope: Scope, block: BlockRef) -> BlockDeleted:
    """Delete a block with its history, detaching it from every agent that has it. This cannot be undone."""
    async with scope.sessions.begin() as session:
        found = await resolve_block(session, scope, block)
        attached = await block_repo.agents_of(session, scope.owner_id, [found.id])
        await block_repo.delete_block(session, scope.owner_id, found.id)
    return BlockDeleted(id=str(found.id), label=found.label, detached_from=attached[found.id])


async def block_update(
    scope: Scope,
    block: BlockRef,
    *,
    value: str | None = None,
    limit: int | None = None,
    description: str | None = None,
    read_only: bool | None = None,
    actor: str = "block_update",
) -> BlockInfo:
    """Change a block's text, limit, description or read-only flag (None leaves one as it is), for a person
    curating memory (the REST API, the web UI). A new text is a new version in the block's history.

    A read-only block's text changes only in a request that also clears the flag; a limit below the text's
    length is refused, as is a text over the limit.
    """
    if value is not None:
        check_text("value", value, max_chars=scope.max_input_chars, allow_empty=True)
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit {limit} is not valid; use 1 to {MAX_LIMIT} characters")
    if description is not None:
        check_text("description", description, max_chars=2000, allow_empty=True)
    async with scope.sessions.begin() as session:
        found = await resolve_block(session, scope, block)
        new_value = found.value if value is None else value
        new_limit = found.char_limit if limit is None else limit
        stays_read_only = found.read_only if read_only is None else read_only
        if value is not None and value != found.value and found.read_only and stays_read_only:
            raise ReadOnlyError(
                f"block '{found.label}' is read-only; send read_only=false with the new value to change its text"
            )
        if len(new_value) > new_limit:
            raise LimitExceededError(
                f"block '{found.label}' would hold {len(new_value)} characters, over its limit of {new_limit}; "
                "shorten the text or raise the limit"
            )
        block_repo.set_settings(found, char_limit=new_limit, description=description, read_only=read_only)
        if new_value != found.value:
            await block_repo.write_value(session, found, new_value, actor)
        await session.flush()
        return await _info(session, scope, found)


async def resolve_block(session: AsyncSession, scope: Scope, reference: str) -> Block:
    """The caller's block named by id, or by a label only one of the caller's blocks has, row-locked until the
    transaction ends (so an edit, an attach or a delete of it finishes first)."""
    block_id = _as_uuid(reference)
    if block_id is None:
        block_id = await _id_of_label(session, scope, reference)
    found = await block_repo.lock_by_id(session, scope.owner_id, block_id)
    if found is None:
        raise NotFoundError(f"block {reference.strip()} does not exist; call block_list to see your blocks")
    return found


async def _id_of_label(session: AsyncSession, scope: Scope, label: str) -> uuid.UUID:
    if not LABEL_PATTERN.fullmatch(label):
        raise InvalidInputError(
            f"{label[:60]!r} is neither a block id nor a block label; call block_list to see your blocks"
        )
    candidates = await block_repo.with_label(session, scope.owner_id, label, limit=CANDIDATES_SHOWN + 1)
    if not candidates:
        raise NotFoundError(f"you have no block labelled '{label}'; call block_list to see your blocks")
    if len(candidates) > 1:
        attached = await block_repo.agents_of(session, scope.owner_id, [c.id for c in candidates])
        named = "; ".join(f"{c.id} ({_attached_to(attached[c.id])})" for c in candidates[:CANDIDATES_SHOWN]) + (
            "; …" if len(candidates) > CANDIDATES_SHOWN else ""
        )
        raise InvalidInputError(f"several of your blocks are labelled '{label}': {named}; name the block by its id")
    return candidates[0].id


def _attached_to(names: list[str]) -> str:
    if not names:
        return "attached to no agent"
    shown = ", ".join(f"'{name}'" for name in names[:3])
    return f"attached to {shown}" + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


async def _info(session: AsyncSession, scope: Scope, block: Block) -> BlockInfo:
    attached = await block_repo.agents_of(session, scope.owner_id, [block.id])
    return block_info(block, attached[block.id], SHOWN_CHARS)


def block_info(block: Block, agents: list[str], shown: int) -> BlockInfo:
    return BlockInfo(
        id=str(block.id),
        label=block.label,
        description=cut(block.description, shown),
        preview=cut(block.value, shown),
        chars_current=len(block.value),
        chars_limit=block.char_limit,
        read_only=block.read_only,
        version=block.version,
        standalone=block.standalone,
        agents=agents[:AGENTS_SHOWN],
        agent_count=len(agents),
    )
