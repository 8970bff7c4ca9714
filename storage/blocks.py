"""Core-memory blocks, their links to agents, and their history.

Every function takes the owner (reads and deletes filter by it, `create` stores it), except those that act on a
block the caller already holds from an owner-checked query in the same transaction (`link`, `write_value`,
`version_of`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from engram.storage.paging import Cursor, keyset_page
from engram.storage.schema import Agent, AgentBlock, Block, BlockHistory, table_of


async def of_agent(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> list[Block]:
    """The agent's blocks in display order."""
    rows = await session.scalars(
        select(Block)
        .join(AgentBlock, AgentBlock.block_id == Block.id)
        .where(AgentBlock.agent_id == agent_id, Block.owner_id == owner_id)
        .order_by(AgentBlock.position, Block.label)
    )
    return list(rows)


# Every edit of a block runs these, so they are built once (building a statement costs about as much CPU as
# running it). Measured in one process, an append's transaction without the agent's lookup: 4.2-6.7 ms of CPU
# with the lock built per call and the write flushed by the ORM, 2.1-3.5 ms with these.
_LOCK_FOR_EDIT = (
    select(Block)
    .join(AgentBlock, AgentBlock.block_id == Block.id)
    .where(
        AgentBlock.agent_id == bindparam("agent"),
        AgentBlock.label == bindparam("label"),
        Block.owner_id == bindparam("owner"),
    )
    .with_for_update(of=Block)
    .execution_options(populate_existing=True)
)
_blocks = table_of(Block)
_RECORD_HISTORY = insert(table_of(BlockHistory))
_WRITE = (
    update(_blocks)
    .where(_blocks.c.id == bindparam("block"))
    .values(
        value=bindparam("new_value"),
        version=bindparam("new_version"),
        char_limit=bindparam("new_char_limit"),
        description=bindparam("new_description"),
        read_only=bindparam("new_read_only"),
        updated_at=func.now(),
    )
    .returning(_blocks.c.updated_at)
)


async def lock_for_edit(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, label: str) -> Block | None:
    """The agent's block with this label, row-locked until the transaction ends (edits never interleave)."""
    return await session.scalar(_LOCK_FOR_EDIT, {"agent": agent_id, "label": label, "owner": owner_id})


async def get(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, label: str) -> Block | None:
    return await session.scalar(
        select(Block)
        .join(AgentBlock, AgentBlock.block_id == Block.id)
        .where(AgentBlock.agent_id == agent_id, AgentBlock.label == label, Block.owner_id == owner_id)
    )


async def lock_by_id(session: AsyncSession, owner_id: uuid.UUID, block_id: uuid.UUID) -> Block | None:
    """The owner's block with this id, row-locked until the transaction ends (an edit or a delete finishes first)."""
    return await session.scalar(
        select(Block)
        .where(Block.owner_id == owner_id, Block.id == block_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def with_label(session: AsyncSession, owner_id: uuid.UUID, label: str, *, limit: int) -> list[Block]:
    """Up to `limit` of the owner's blocks labelled `label`, oldest first."""
    rows = await session.scalars(
        select(Block)
        .where(Block.owner_id == owner_id, Block.label == label)
        .order_by(Block.created_at, Block.id)
        .limit(limit)
    )
    return list(rows)


async def create(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    label: str,
    value: str,
    char_limit: int,
    description: str = "",
    read_only: bool = False,
    standalone: bool = False,
) -> Block:
    block = Block(
        id=uuid.uuid4(),
        owner_id=owner_id,
        label=label,
        value=value,
        char_limit=char_limit,
        description=description,
        read_only=read_only,
        standalone=standalone,
        version=1,
    )
    session.add(block)
    await session.flush()
    return block


async def create_linked(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    label: str,
    value: str,
    char_limit: int,
    description: str = "",
    read_only: bool = False,
    position: int = 0,
) -> Block:
    """A new block made with an agent: it goes when no agent uses it any more (see `delete_unlinked`)."""
    block = await create(
        session,
        owner_id,
        label=label,
        value=value,
        char_limit=char_limit,
        description=description,
        read_only=read_only,
    )
    session.add(AgentBlock(agent_id=agent_id, block_id=block.id, label=label, position=position))
    await session.flush()
    return block


async def link(session: AsyncSession, agent_id: uuid.UUID, block: Block) -> bool:
    """Attach the block to the agent after its other blocks; False if the agent already has one of that label
    (this block or another). The caller has checked that agent and block belong to the same owner."""
    after = select(func.coalesce(func.max(AgentBlock.position) + 1, 0)).where(AgentBlock.agent_id == agent_id)
    inserted = await session.scalar(
        insert(AgentBlock)
        .values(agent_id=agent_id, block_id=block.id, label=block.label, position=after.scalar_subquery())
        .on_conflict_do_nothing()
        .returning(AgentBlock.block_id)
    )
    return inserted is not None


async def unlink(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, block_id: uuid.UUID) -> bool:
    """Detach the block from the agent; False if it was not attached. The block itself stays."""
    owned = select(Block.id).where(Block.owner_id == owner_id, Block.id == block_id)
    result = await session.execute(
        delete(AgentBlock)
        .where(AgentBlock.agent_id == agent_id, AgentBlock.block_id.in_(owned))
        .returning(AgentBlock.block_id)
    )
    return result.first() is not None


async def agents_of(
    session: AsyncSession, owner_id: uuid.UUID, block_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """The names of the agents each block is attached to, by name."""
    rows = await session.execute(
        select(AgentBlock.block_id, Agent.name)
        .join(Agent, Agent.id == AgentBlock.agent_id)
        .where(Agent.owner_id == owner_id, AgentBlock.block_id.in_(block_ids))
        .order_by(Agent.name)
    )
    found: dict[uuid.UUID, list[str]] = {block_id: [] for block_id in block_ids}
    for block_id, name in rows:
        found[block_id].append(name)
    return found


async def list_page(
    session: AsyncSession, owner_id: uuid.UUID, *, label: str | None, offset: int, limit: int
) -> tuple[list[Block], int]:
    """The owner's blocks by label, then age; with `label`, only those."""
    where = [Block.owner_id == owner_id] + ([Block.label == label] if label is not None else [])
    total = await session.scalar(select(func.count()).select_from(Block).where(*where))
    rows = await session.scalars(
        select(Block).where(*where).order_by(Block.label, Block.created_at, Block.id).offset(offset).limit(limit)
    )
    return list(rows), int(total or 0)


async def delete_block(session: AsyncSession, owner_id: uuid.UUID, block_id: uuid.UUID) -> None:
    """Delete the block, its links to agents and its history."""
    await session.execute(delete(Block).where(Block.owner_id == owner_id, Block.id == block_id))


async def write_value(session: AsyncSession, block: Block, new_value: str, actor: str) -> None:
    """Record the current value in history, then store the new one and bump the version.

    The caller holds the row lock from `lock_for_edit`, in the same transaction. The history row keeps the
    value being replaced under its version, with `actor`: what replaced it (and so made the next version).
    Settings changed by `set_settings` and not yet written go in the same statement as the new value, so the
    limit is checked against the text stored with it.
    """
    with session.no_autoflush:  # the settings must not be flushed on their own before the new value
        await session.execute(
            _RECORD_HISTORY, {"block_id": block.id, "version": block.version, "value": block.value, "actor": actor}
        )
        written = {
            "value": new_value,
            "version": block.version + 1,
            "char_limit": block.char_limit,
            "description": block.description,
            "read_only": block.read_only,
        }
        updated_at = await session.scalar(
            _WRITE,
            {"block": block.id, **{f"new_{column}": value for column, value in written.items()}},
        )
    for column, value in {**written, "updated_at": updated_at}.items():
        set_committed_value(block, column, value)  # the object shows what is stored, with nothing left to flush


def set_settings(
    block: Block, *, char_limit: int | None = None, description: str | None = None, read_only: bool | None = None
) -> None:
    """Change the block's limit, description or read-only flag (None leaves one); written with the next flush,
    together with a new value if one follows, so the limit is checked against the text that ends up stored.
    The caller holds the row lock."""
    if char_limit is not None:
        block.char_limit = char_limit
    if description is not None:
        block.description = description
    if read_only is not None:
        block.read_only = read_only


async def delete_unlinked(session: AsyncSession, owner_id: uuid.UUID, block_ids: list[uuid.UUID]) -> int:
    """Delete those of the given blocks that no agent links to any more, except standalone ones (made on their
    own, they stay until deleted on their own); returns how many."""
    if not block_ids:
        return 0
    linked = select(AgentBlock.block_id).where(AgentBlock.block_id.in_(block_ids))
    result = await session.execute(
        delete(Block)
        .where(
            Block.owner_id == owner_id,
            Block.id.in_(block_ids),
            Block.id.not_in(linked),
            Block.standalone.is_(False),
        )
        .returning(Block.id)
    )
    return len(result.all())


@dataclass(frozen=True)
class Version:
    """One version of a block: its text, what made it and when (None where history does not say)."""

    version: int
    value: str
    actor: str
    created_at: datetime | None


async def versions(
    session: AsyncSession, owner_id: uuid.UUID, block: Block, *, limit: int
) -> tuple[list[Version], int]:
    """The block's `limit` newest versions, the current one first, and how many older ones there are.

    A history row holds version v's text and, as its actor and time, what replaced it: the maker of v + 1.
    Version 1 was made with the block.
    """
    rows = list(
        await session.scalars(
            select(BlockHistory)
            .join(Block, Block.id == BlockHistory.block_id)
            .where(Block.owner_id == owner_id, BlockHistory.block_id == block.id)
            .order_by(BlockHistory.version.desc())
            .limit(limit)
        )
    )
    made = {row.version + 1: (row.actor, row.created_at) for row in rows}
    made.setdefault(1, ("created", block.created_at))
    texts = [(block.version, block.value), *((row.version, row.value) for row in rows[: limit - 1])]
    shown = [Version(number, value, *made.get(number, ("unknown", None))) for number, value in texts]
    older = await session.scalar(
        select(func.count())
        .select_from(BlockHistory)
        .where(BlockHistory.block_id == block.id, BlockHistory.version < shown[-1].version)
    )
    return shown, int(older or 0)


async def version_of(session: AsyncSession, block: Block, version: int) -> BlockHistory | None:
    """The history row holding the block's text at `version` (the caller has the block from an owner-checked
    query)."""
    return await session.scalar(
        select(BlockHistory)
        .where(BlockHistory.block_id == block.id, BlockHistory.version == version)
        .order_by(BlockHistory.id.desc())
        .limit(1)
    )


async def by_id(session: AsyncSession, owner_id: uuid.UUID, block_id: uuid.UUID) -> Block | None:
    return await session.scalar(select(Block).where(Block.owner_id == owner_id, Block.id == block_id))


async def of_agents(
    session: AsyncSession, owner_id: uuid.UUID, agent_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Block]]:
    """Each agent's blocks in display order, in one query."""
    rows = await session.execute(
        select(AgentBlock.agent_id, Block)
        .join(Block, Block.id == AgentBlock.block_id)
        .where(AgentBlock.agent_id.in_(agent_ids), Block.owner_id == owner_id)
        .order_by(AgentBlock.agent_id, AgentBlock.position, Block.label)
    )
    found: dict[uuid.UUID, list[Block]] = {agent_id: [] for agent_id in agent_ids}
    for agent_id, block in rows:
        found[agent_id].append(block)
    return found


async def page(session: AsyncSession, owner_id: uuid.UUID, cursor: Cursor, *, label: str | None = None) -> list[Block]:
    """The owner's blocks in order of creation, a keyset page at a time; with `label`, only those."""
    query = select(Block).where(Block.owner_id == owner_id)
    if label is not None:
        query = query.where(Block.label == label)
    return await keyset_page(session, query, Block.created_at, Block.id, cursor, what="block")
