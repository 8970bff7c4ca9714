"""What memory_context reads and remembers beyond the memory tiers: the items each host session was given
already (context_given), and recall's search filter without the session's own conversation.

Every query takes the owner and the agent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage.messages import MessageFilter
from engram.storage.schema import ContextGiven


@dataclass(frozen=True)
class OtherConversations(MessageFilter):
    """Recall's filter, leaving out one conversation: the session asking, whose messages it has in view."""

    excluded_conversation_id: uuid.UUID | None = None

    def sql(self) -> tuple[str, dict[str, Any]]:
        filters, values = super().sql()
        if self.excluded_conversation_id is None:
            return filters, values
        return f"{filters} AND conversation_id <> :excluded_conversation", values | {
            "excluded_conversation": self.excluded_conversation_id
        }


async def given(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, host_session: str) -> set[str]:
    """The items this host session was given already."""
    rows = await session.scalars(
        select(ContextGiven.item).where(
            ContextGiven.owner_id == owner_id, ContextGiven.agent_id == agent_id, ContextGiven.session == host_session
        )
    )
    return set(rows)


async def remember_given(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, host_session: str, items: Iterable[str]
) -> None:
    rows = [{"owner_id": owner_id, "agent_id": agent_id, "session": host_session, "item": item} for item in items]
    if rows:
        await session.execute(insert(ContextGiven).values(rows).on_conflict_do_nothing())


async def forget_given(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    host_session: str | None = None,
    before: datetime | None = None,
) -> int:
    """Forget what one host session was given (its context was cleared or compacted), or what every session
    was given before a time (sessions that old are over); returns how many items were forgotten."""
    statement = delete(ContextGiven).where(ContextGiven.owner_id == owner_id, ContextGiven.agent_id == agent_id)
    if host_session is not None:
        statement = statement.where(ContextGiven.session == host_session)
    if before is not None:
        statement = statement.where(ContextGiven.given_at < before)
    result = await session.execute(statement.returning(ContextGiven.item))
    return len(result.all())


async def content_words(session: AsyncSession, value: str) -> int:
    """How many distinct words `value` holds once stop words are dropped and the rest stemmed (PostgreSQL's
    english configuration, as the keyword leg reads a query)."""
    return int(await session.scalar(text("SELECT length(to_tsvector('english', :value))"), {"value": value}) or 0)
