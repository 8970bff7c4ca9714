"""Recall memory: conversations, their messages, the search filter and the queue of pending embeddings.

Every query about a caller's data takes the owner and the agent. Messages are written without an
embedding; `claim_pending` hands them to whoever embeds them (the server's background worker, `engram
import`, `engram reindex`), so a message written just before a crash is embedded at the next start.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage import search
from engram.storage.errors import ConflictError
from engram.storage.paging import Cursor, keyset_page
from engram.storage.schema import Conversation, Message, Summary, table_of


@dataclass(frozen=True)
class NewMessage:
    role: str
    text: str
    content: dict[str, Any]
    created_at: datetime | None = None  # now, when not given
    external_key: str | None = None  # the source's id (imports): a message with a known key is not stored again
    search_call: bool = False  # a conversation_search call or its result: left out of searches by default


@dataclass(frozen=True)
class MessageFilter:
    """Filters applied in SQL to both search legs."""

    roles: Sequence[str] = ("user", "assistant", "system")
    include_search_calls: bool = False
    conversation_id: uuid.UUID | None = None
    start: datetime | None = None
    end: datetime | None = None

    def sql(self) -> tuple[str, dict[str, Any]]:
        clauses = ["role = ANY(CAST(:roles AS text[]))"]
        values: dict[str, Any] = {"roles": list(self.roles)}
        if not self.include_search_calls:
            clauses.append("NOT search_call")
        if self.conversation_id is not None:
            clauses.append("conversation_id = :conversation")
            values["conversation"] = self.conversation_id
        return search.conditions(clauses, values, start=self.start, end=self.end)


@dataclass(frozen=True)
class StoredMessage:
    id: uuid.UUID
    ordinal: int
    created: bool  # False when the conversation already held a message with its external key
    created_at: datetime


@dataclass(frozen=True)
class PendingMessage:
    id: uuid.UUID
    agent_id: uuid.UUID
    text: str


async def get_conversation(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, name: str
) -> Conversation | None:
    return await session.scalar(
        select(Conversation).where(
            Conversation.owner_id == owner_id, Conversation.agent_id == agent_id, Conversation.name == name
        )
    )


async def ensure_conversation(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    name: str,
    *,
    title: str = "",
    source: str = "",
    created_at: datetime | None = None,
) -> Conversation:
    """The agent's conversation called `name`, created if new (safe when several callers create it at once)."""
    values: dict[str, Any] = {"owner_id": owner_id, "agent_id": agent_id, "name": name, "title": title}
    values |= {"source": source, "id": uuid.uuid4()}
    if created_at is not None:
        values["created_at"] = created_at
    await session.execute(
        insert(Conversation).values(values).on_conflict_do_nothing(constraint="conversations_agent_name_key")
    )
    found = await get_conversation(session, owner_id, agent_id, name)
    assert found is not None
    return found


async def append(
    session: AsyncSession, conversation: Conversation, messages: Sequence[NewMessage]
) -> list[StoredMessage]:
    """Add messages at the end of the conversation, in order. A message whose external key the conversation
    already holds is not added again.

    The conversation row is locked until the transaction ends, so concurrent writers get distinct ordinals.
    """
    locked = await session.execute(
        select(Conversation.message_count).where(Conversation.id == conversation.id).with_for_update()
    )
    found = locked.scalar_one_or_none()
    if found is None:  # deleted by a transaction this one waited for
        raise ConflictError(
            f"conversation '{conversation.name}' was deleted while the message was being added; record it again"
        )
    count = int(found)
    keys = [message.external_key for message in messages if message.external_key is not None]
    known: dict[str, StoredMessage] = {}
    if keys:
        rows = await session.execute(
            select(Message.external_key, Message.id, Message.ordinal, Message.created_at).where(
                Message.conversation_id == conversation.id, Message.external_key.in_(keys)
            )
        )
        known = {
            row.external_key: StoredMessage(row.id, row.ordinal, created=False, created_at=row.created_at)
            for row in rows
        }
    results: list[StoredMessage] = []
    now = datetime.now(UTC)
    rows_to_add: list[dict[str, Any]] = []
    for message in messages:
        if message.external_key is not None and message.external_key in known:
            results.append(known[message.external_key])
            continue
        count += 1
        row: dict[str, Any] = {
            "id": uuid.uuid4(),
            "owner_id": conversation.owner_id,
            "agent_id": conversation.agent_id,
            "conversation_id": conversation.id,
            "ordinal": count,
            "role": message.role,
            "content": message.content,
            "text": message.text,
            "external_key": message.external_key,
            "search_call": message.search_call,
            "created_at": message.created_at or now,
        }
        stored = StoredMessage(row["id"], count, created=True, created_at=row["created_at"])
        if message.external_key is not None:
            known[message.external_key] = replace(stored, created=False)
        rows_to_add.append(row)
        results.append(stored)
    if rows_to_add:
        await session.execute(insert(Message), rows_to_add)
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(
                message_count=count,
                last_message_at=select(func.max(Message.created_at))
                .where(Message.conversation_id == conversation.id)
                .scalar_subquery(),
            )
        )
    return results


# record_one's two statements, built once: building the upsert for every message cost more CPU than running
# it (measured in one process: record_one took 3.6-5.2 ms of CPU with statements built per call, 0.8-1.1 ms
# with these).
_conversations = table_of(Conversation)
_first_message = insert(_conversations).values(
    id=bindparam("id"),
    owner_id=bindparam("owner"),
    agent_id=bindparam("agent"),
    name=bindparam("name"),
    title="",
    source=bindparam("source"),
    message_count=1,
    last_message_at=bindparam("at"),
)
_COUNT_MESSAGE = _first_message.on_conflict_do_update(
    constraint="conversations_agent_name_key",
    set_={
        "message_count": _conversations.c.message_count + 1,
        "last_message_at": func.greatest(_conversations.c.last_message_at, _first_message.excluded.last_message_at),
    },
).returning(_conversations.c.id, _conversations.c.message_count)
_INSERT_MESSAGE = insert(table_of(Message))


async def record_one(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    conversation: str,
    message: NewMessage,
    *,
    source: str,
) -> StoredMessage:
    """One message at the end of the agent's conversation called `conversation` (created if new), in two
    statements where `ensure_conversation` and `append` take five: the conversation's row is created, or
    counted up and so locked until the transaction ends (concurrent writers get distinct ordinals), and gives
    the message its ordinal; then the message is inserted. For messages without an external key (those
    `append` checks first)."""
    if message.external_key is not None:
        raise ValueError("record_one stores messages without an external key; use append")
    created_at = message.created_at or datetime.now(UTC)
    counted = await session.execute(
        _COUNT_MESSAGE,
        {
            "id": uuid.uuid4(),
            "owner": owner_id,
            "agent": agent_id,
            "name": conversation,
            "source": source,
            "at": created_at,
        },
    )
    conversation_id, ordinal = counted.one()
    message_id = uuid.uuid4()
    await session.execute(
        _INSERT_MESSAGE,
        {
            "id": message_id,
            "owner_id": owner_id,
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            "ordinal": ordinal,
            "role": message.role,
            "content": message.content,
            "text": message.text,
            "search_call": message.search_call,
            "created_at": created_at,
        },
    )
    return StoredMessage(message_id, ordinal, created=True, created_at=created_at)


@dataclass(frozen=True)
class FoundMessage:
    """What a search result shows of a message."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    conversation: str
    ordinal: int
    role: str
    text: str
    created_at: datetime


FOUND_COLUMNS = (
    "m.id, m.conversation_id, c.name AS conversation, m.ordinal, m.role, m.text, m.created_at "
    "FROM messages m JOIN conversations c ON c.id = m.conversation_id"
)


async def found(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, FoundMessage]:
    rows = await session.execute(text(f"SELECT {FOUND_COLUMNS} WHERE m.id = ANY(:ids)"), {"ids": list(ids)})
    return {row.id: FoundMessage(*row) for row in rows}


async def neighbours(
    session: AsyncSession, hits: Sequence[FoundMessage], *, around: int = 1
) -> dict[tuple[uuid.UUID, int], FoundMessage]:
    """The messages within `around` places of each hit in its conversation, keyed by (conversation, ordinal)."""
    pairs = sorted(
        {(hit.conversation_id, hit.ordinal + step) for hit in hits for step in range(-around, around + 1) if step}
    )
    if not pairs:
        return {}
    rows = await session.execute(
        text(
            f"SELECT {FOUND_COLUMNS} JOIN unnest(CAST(:conversations AS uuid[]), CAST(:ordinals AS int[])) "
            "AS wanted(conversation_id, ordinal) ON wanted.conversation_id = m.conversation_id "
            "AND wanted.ordinal = m.ordinal"
        ),
        {"conversations": [conversation for conversation, _ in pairs], "ordinals": [ordinal for _, ordinal in pairs]},
    )
    return {(row.conversation_id, row.ordinal): FoundMessage(*row) for row in rows}


@dataclass(frozen=True)
class Placement:
    """Where and when a message was said."""

    conversation_id: uuid.UUID
    ordinal: int
    created_at: datetime


# `surroundings`: each candidate's Placement, and the ids of its neighbours that pass the filter by position
Surroundings = tuple[dict[uuid.UUID, Placement], dict[tuple[uuid.UUID, int], uuid.UUID]]


async def surroundings(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    where: MessageFilter,
) -> Surroundings:
    """In one statement: where and when each of these messages was said (a deleted one is left out), and
    the ids of the agent's messages just before and after each (by (conversation, ordinal)) that pass the
    filter."""
    if not ids:
        return {}, {}
    filters, values = where.sql()
    values |= {"owner": owner_id, "agent": agent_id, "ids": list(ids)}

    # One row per candidate, its neighbours' ids beside it. Each neighbour is one lookup in the
    # (conversation_id, ordinal) index, in which the filter's bare column names mean the neighbour's: LIMIT 1
    # (a position holds one message) keeps the planner from flattening the LATERAL subquery into a join over
    # all the agent's messages, which it chose on a freshly filled table (13 ms at 700 messages, against 1 ms).
    def beside(step: str, name: str) -> str:
        return (
            "LEFT JOIN LATERAL (SELECT id FROM messages WHERE conversation_id = m.conversation_id "
            f"AND ordinal = m.ordinal {step} 1 AND agent_id = :agent AND owner_id = :owner{filters} LIMIT 1) {name} "
            "ON true "
        )

    rows = await session.execute(
        text(
            "SELECT m.id, m.conversation_id, m.ordinal, m.created_at, earlier.id, later.id FROM messages m "
            f"{beside('-', 'earlier')}{beside('+', 'later')}WHERE m.id = ANY(:ids)"
        ),
        values,
    )
    placed: dict[uuid.UUID, Placement] = {}
    nearby: dict[tuple[uuid.UUID, int], uuid.UUID] = {}
    for found_id, conversation_id, ordinal, created_at, earlier_id, later_id in rows:
        placed[found_id] = Placement(conversation_id, ordinal, created_at)
        if earlier_id is not None:
            nearby[(conversation_id, ordinal - 1)] = earlier_id
        if later_id is not None:
            nearby[(conversation_id, ordinal + 1)] = later_id
    return placed, nearby


async def found_around(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, around: int = 1
) -> tuple[dict[uuid.UUID, FoundMessage], dict[tuple[uuid.UUID, int], FoundMessage]]:
    """`found` and `neighbours` in one statement: these messages, and every message within `around` places of
    one of them in its conversation (them included), keyed by (conversation, ordinal)."""
    if not ids:
        return {}, {}
    rows = await session.execute(
        text(
            "WITH hit AS MATERIALIZED (SELECT conversation_id AS cid, ordinal AS cord FROM messages "
            "WHERE id = ANY(:ids)), "
            "wanted AS (SELECT DISTINCT cid, cord + step AS place FROM hit, "
            "generate_series(-CAST(:around AS int), CAST(:around AS int)) AS step) "
            f"SELECT found.* FROM wanted, LATERAL (SELECT {FOUND_COLUMNS} "
            "WHERE m.conversation_id = wanted.cid AND m.ordinal = wanted.place LIMIT 1) found"
        ),
        {"ids": list(ids), "around": around},
    )
    wanted = set(ids)
    hits: dict[uuid.UUID, FoundMessage] = {}
    nearby: dict[tuple[uuid.UUID, int], FoundMessage] = {}
    for row in rows:
        message = FoundMessage(*row)
        nearby[(message.conversation_id, message.ordinal)] = message
        if message.id in wanted:
            hits[message.id] = message
    return hits, nearby


async def list_conversations(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[Conversation], int]:
    """The agent's conversations, most recently active first, and how many there are in all."""
    rows = await session.scalars(
        select(Conversation)
        .where(Conversation.owner_id == owner_id, Conversation.agent_id == agent_id)
        .order_by(func.coalesce(Conversation.last_message_at, Conversation.created_at).desc(), Conversation.name)
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.owner_id == owner_id, Conversation.agent_id == agent_id)
    )
    return list(rows), int(total or 0)


async def delete_conversation(session: AsyncSession, conversation: Conversation) -> tuple[int, int] | None:
    """Delete the conversation, its messages and its summaries; how many messages and summaries went with it
    (None if it was gone already).

    The conversation row is locked first: a writer adding to it finishes before, or finds it gone.
    """
    locked = await session.scalar(select(Conversation.id).where(Conversation.id == conversation.id).with_for_update())
    if locked is None:
        return None
    messages = await session.execute(
        delete(Message).where(Message.conversation_id == conversation.id).returning(Message.id)
    )
    summaries = await session.execute(
        delete(Summary).where(Summary.conversation_id == conversation.id).returning(Summary.id)
    )
    counts = len(messages.all()), len(summaries.all())
    await session.execute(delete(Conversation).where(Conversation.id == conversation.id))
    return counts


async def transcript(session: AsyncSession, conversation: Conversation, *, first: int, limit: int) -> list[Message]:
    """Messages from ordinal `first` on, in order."""
    rows = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.ordinal >= first)
        .order_by(Message.ordinal)
        .limit(limit)
    )
    return list(rows)


async def claim_pending(
    session: AsyncSession, *, limit: int, agent_id: uuid.UUID | None = None
) -> list[PendingMessage]:
    """Up to `limit` messages still waiting for an embedding, oldest first, locked for this transaction.

    This serves Engram's own embedding worker, for every owner: rows another transaction is embedding
    are skipped, so several processes share the work without doing it twice.
    """
    statement = (
        select(Message.id, Message.agent_id, Message.text)
        .where(Message.embedding_model.is_(None))
        .order_by(Message.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if agent_id is not None:
        statement = statement.where(Message.agent_id == agent_id)
    return [PendingMessage(id=row.id, agent_id=row.agent_id, text=row.text) for row in await session.execute(statement)]


async def count_pending(
    session: AsyncSession, *, agent_id: uuid.UUID | None = None, owner_id: uuid.UUID | None = None
) -> int:
    statement = select(func.count()).select_from(Message).where(Message.embedding_model.is_(None))
    if agent_id is not None:
        statement = statement.where(Message.agent_id == agent_id)
    if owner_id is not None:
        statement = statement.where(Message.owner_id == owner_id)
    return int(await session.scalar(statement) or 0)


async def mark_stale_pending(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID | None, model: str) -> int:
    """Queue the owner's messages embedded with another model for re-embedding; returns how many."""
    statement = (
        update(Message)
        .where(Message.owner_id == owner_id, Message.embedding_model.is_not(None), Message.embedding_model != model)
        .values(embedding=None, embedding_model=None)
    )
    if agent_id is not None:
        statement = statement.where(Message.agent_id == agent_id)
    result = await session.execute(statement.returning(Message.id))
    return len(result.all())


async def models_in_use(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        text(
            "SELECT embedding_model AS model, count(*) AS n FROM messages WHERE embedding_model IS NOT NULL GROUP BY 1"
        )
    )
    return {row.model: int(row.n) for row in rows}


async def page(session: AsyncSession, conversation: Conversation, cursor: Cursor) -> list[Message]:
    """The conversation's messages in order, a keyset page at a time."""
    query = select(Message).where(Message.conversation_id == conversation.id)
    return await keyset_page(session, query, Message.ordinal, Message.id, cursor, what="message")


async def conversations_page(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, cursor: Cursor
) -> list[Conversation]:
    """The agent's conversations in order of creation, a keyset page at a time."""
    query = select(Conversation).where(Conversation.owner_id == owner_id, Conversation.agent_id == agent_id)
    return await keyset_page(session, query, Conversation.created_at, Conversation.id, cursor, what="conversation")


async def by_external_key(session: AsyncSession, conversation: Conversation, key: str) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.conversation_id == conversation.id, Message.external_key == key)
    )
