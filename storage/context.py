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


@dataclass(frozen=True)
class RecentConversation:
    """A conversation with its last messages: (id, role, text) oldest first."""

    id: uuid.UUID
    name: str
    title: str
    message_count: int
    last_at: datetime
    last_messages: list[tuple[uuid.UUID, str, str]]


async def latest_conversations(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    excluding: uuid.UUID | None,
    limit: int,
    messages: int,
) -> list[RecentConversation]:
    """The agent's `limit` most recently active conversations (but `excluding`), each with its last `messages`
    messages, in one query."""
    rows = await session.execute(
        text(
            "SELECT c.id, c.name, c.title, c.message_count, c.last_at, m.id AS message_id, m.role, m.text "
            "FROM (SELECT id, name, title, message_count, coalesce(last_message_at, created_at) AS last_at "
            "FROM conversations WHERE owner_id = :owner AND agent_id = :agent AND message_count > 0 "
            "AND id IS DISTINCT FROM CAST(:excluding AS uuid) ORDER BY last_at DESC, name LIMIT :limit) c "
            "CROSS JOIN LATERAL (SELECT id, role, text, ordinal FROM messages WHERE conversation_id = c.id "
            "AND ordinal > c.message_count - :messages) m ORDER BY c.last_at DESC, c.name, m.ordinal"
        ),
        {"owner": owner_id, "agent": agent_id, "excluding": excluding, "limit": limit, "messages": messages},
    )
    found: dict[uuid.UUID, RecentConversation] = {}
    for row in rows:
        conversation = found.setdefault(
            row.id, RecentConversation(row.id, row.name, row.title, row.message_count, row.last_at, [])
        )
        conversation.last_messages.append((row.message_id, row.role, row.text))
    return list(found.values())


async def holdings(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> tuple[bool, bool]:
    """Whether the agent has any archival passages, and any recorded messages (a search of none is skipped)."""
    row = (
        await session.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM passages WHERE owner_id = :owner AND agent_id = :agent) AS passages, "
                "EXISTS (SELECT 1 FROM conversations WHERE owner_id = :owner AND agent_id = :agent "
                "AND message_count > 0) AS messages"
            ),
            {"owner": owner_id, "agent": agent_id},
        )
    ).one()
    return bool(row.passages), bool(row.messages)
