"""Core-memory blocks, their links to agents, and their history.

Every function takes the owner (reads and deletes filter by it, `create_linked` stores it), except `write_value`,
which changes a block the caller has locked with `lock_for_edit`, an owner-checked query, in the same transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage.schema import AgentBlock, Block, BlockHistory


async def of_agent(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> list[Block]:
    """The agent's blocks in display order."""
    rows = await session.scalars(
        select(Block)
        .join(AgentBlock, AgentBlock.block_id == Block.id)
        .where(AgentBlock.agent_id == agent_id, Block.owner_id == owner_id)
        .order_by(AgentBlock.position, Block.label)
    )
    return list(rows)


async def lock_for_edit(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, label: str) -> Block | None:
    """The agent's block with this label, row-locked until the transaction ends (edits never interleave)."""
    return await session.scalar(
        select(Block)
        .join(AgentBlock, AgentBlock.block_id == Block.id)
        .where(AgentBlock.agent_id == agent_id, AgentBlock.label == label, Block.owner_id == owner_id)
        .with_for_update(of=Block)
        .execution_options(populate_existing=True)
    )


async def get(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, label: str) -> Block | None:
    return await session.scalar(
        select(Block)
        .join(AgentBlock, AgentBlock.block_id == Block.id)
        .where(AgentBlock.agent_id == agent_id, AgentBlock.label == label, Block.owner_id == owner_id)
    )


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
    block = Block(
        id=uuid.uuid4(),
        owner_id=owner_id,
        label=label,
        value=value,
        char_limit=char_limit,
        description=description,
        read_only=read_only,
        version=1,
    )
    session.add(block)
    await session.flush()
    session.add(AgentBlock(agent_id=agent_id, block_id=block.id, label=label, position=position))
    await session.flush()
    return block


async def write_value(session: AsyncSession, block: Block, new_value: str, actor: str) -> None:
    """Record the current value in history, then store the new one and bump the version.

    The caller holds the row lock from `lock_for_edit`, in the same transaction.
    """
    session.add(BlockHistory(block_id=block.id, version=block.version, value=block.value, actor=actor))
    block.value = new_value
    block.version += 1
    block.updated_at = func.now()
    await session.flush()


async def delete_unlinked(session: AsyncSession, owner_id: uuid.UUID, block_ids: list[uuid.UUID]) -> int:
    """Delete those of the given blocks that no agent links to any more; returns how many."""
    if not block_ids:
        return 0
    linked = select(AgentBlock.block_id).where(AgentBlock.block_id.in_(block_ids))
    result = await session.execute(
        delete(Block)
        .where(Block.owner_id == owner_id, Block.id.in_(block_ids), Block.id.not_in(linked))
        .returning(Block.id)
    )
    return len(result.all())


async def history(session: AsyncSession, owner_id: uuid.UUID, block_id: uuid.UUID, *, limit: int) -> list[BlockHistory]:
    rows = await session.scalars(
        select(BlockHistory)
        .join(Block, Block.id == BlockHistory.block_id)
        .where(Block.owner_id == owner_id, BlockHistory.block_id == block_id)
        .order_by(BlockHistory.version.desc())
        .limit(limit)
    )
    return list(rows)
