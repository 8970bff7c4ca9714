"""The agent's context window in storage: which messages of a conversation are in context, and its summaries.

A conversation's `context_start` is the first ordinal the agent still sees; everything before it is
covered by the newest summary. Moving the start and storing the summary happen in one transaction, and
the messages themselves are never deleted (recall memory keeps them searchable).
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage.schema import Conversation, Message, Passage, Summary


async def conversation(session: AsyncSession, conversation_id: uuid.UUID) -> Conversation:
    """The conversation as stored now (its context start may have moved since it was read)."""
    found = await session.get(Conversation, conversation_id, populate_existing=True)
    assert found is not None, conversation_id
    return found


async def in_context(session: AsyncSession, conversation: Conversation) -> list[Message]:
    """The messages the agent sees, oldest first."""
    rows = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.ordinal >= conversation.context_start)
        .order_by(Message.ordinal)
    )
    return list(rows)


async def latest(session: AsyncSession, conversation_id: uuid.UUID) -> Summary | None:
    return await session.scalar(
        select(Summary).where(Summary.conversation_id == conversation_id).order_by(Summary.id.desc()).limit(1)
    )


async def count(session: AsyncSession, conversation_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(Summary).where(Summary.conversation_id == conversation_id)
    return int(await session.scalar(statement) or 0)


async def evict(
    session: AsyncSession, conversation: Conversation, *, through: int, evicted: int, text: str, kind: str
) -> Summary:
    """Take the messages up to ordinal `through` out of context, with the summary that now covers them."""
    locked = await session.execute(
        select(Conversation.context_start).where(Conversation.id == conversation.id).with_for_update()
    )
    start = int(locked.scalar_one())
    previous = await latest(session, conversation.id)
    summary = Summary(
        owner_id=conversation.owner_id,
        agent_id=conversation.agent_id,
        conversation_id=conversation.id,
        first_ordinal=previous.first_ordinal if previous is not None else start,
        last_ordinal=through,
        evicted=evicted,
        text=text,
        kind=kind,
    )
    session.add(summary)
    await session.execute(
        update(Conversation).where(Conversation.id == conversation.id).values(context_start=max(start, through + 1))
    )
    await session.flush()
    return summary


async def memory_counts(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> tuple[int, int]:
    """How many archival passages and recorded messages the agent has."""
    passages = await session.scalar(
        select(func.count()).select_from(Passage).where(Passage.owner_id == owner_id, Passage.agent_id == agent_id)
    )
    messages = await session.scalar(
        select(func.count()).select_from(Message).where(Message.owner_id == owner_id, Message.agent_id == agent_id)
    )
    return int(passages or 0), int(messages or 0)
