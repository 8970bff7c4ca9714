"""Whole agents moved in bulk (`engram agents export` and `import`): every row of an agent, read a batch
at a time from one snapshot, and written back with its own timestamps, versions and ordinals.

The everyday repositories (agents, blocks, passages, messages, summaries) write one edit at a time and stamp
it with the present; an import restores what a file says instead, so its writes live here, beside the reads
of an export that they mirror. Every read takes the owner; writes take rows the caller has checked.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import numpy
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import Select, bindparam, case, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import UserDefinedType

from engram.storage import sha256_hex
from engram.storage.schema import (
    Agent,
    AgentBlock,
    Block,
    BlockHistory,
    Conversation,
    Message,
    Passage,
    Summary,
    table_of,
)

BATCH = 1000  # rows fetched from a server-side cursor at a time


async def begin_snapshot(session: AsyncSession) -> None:
    """Make the session's transaction read one snapshot of the database (call it first): an export taken while
    servers write is consistent."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


async def _batches(session: AsyncSession, statement: Select[*tuple[Any, ...]]) -> AsyncIterator[Sequence[Any]]:
    result = await session.stream(statement.execution_options(yield_per=BATCH))
    async for partition in result.partitions(BATCH):
        yield partition


# Reads (an export)


async def agents_named(session: AsyncSession, owner_id: uuid.UUID, names: Sequence[str]) -> dict[str, Agent]:
    rows = await session.scalars(select(Agent).where(Agent.owner_id == owner_id, Agent.name.in_(list(names))))
    return {row.name: row for row in rows}


def block_history(
    session: AsyncSession, owner_id: uuid.UUID, block_ids: Sequence[uuid.UUID]
) -> AsyncIterator[Sequence[Any]]:
    """Every earlier value of these blocks: rows (block_id, version, value, actor, created_at), block by block,
    oldest first."""
    statement = (
        select(
            BlockHistory.block_id, BlockHistory.version, BlockHistory.value, BlockHistory.actor, BlockHistory.created_at
        )
        .join(Block, Block.id == BlockHistory.block_id)
        .where(Block.owner_id == owner_id, BlockHistory.block_id.in_(list(block_ids)))
        .order_by(BlockHistory.block_id, BlockHistory.version, BlockHistory.id)
    )
    return _batches(session, statement)


def passages(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, *, model: str | None
) -> AsyncIterator[Sequence[Any]]:
    """The agent's passages, oldest first (ties in the order of their text's hash, never of their ids): rows
    (text, tags, meta, source, created_at, embedding); `embedding` (pgvector's binary form, see `float32s`) is
    None unless `model` is given and made it."""
    columns: list[Any] = [Passage.text, Passage.tags, Passage.meta, Passage.source, Passage.created_at]
    if model is not None:
        columns.append(_wire_vector(Passage.embedding_model == model, Passage.embedding))
    statement = (
        select(*columns)
        .where(Passage.owner_id == owner_id, Passage.agent_id == agent_id)
        .order_by(Passage.created_at, Passage.content_hash)
    )
    return _batches(session, statement)


def _wire_vector(made_by_model: Any, embedding: Any) -> Any:
    """The vector in pgvector's binary form when `made_by_model` holds, else NULL: read as bytes, it costs a
    fraction of parsing the vector's text (see `float32s`)."""
    return case((made_by_model, func.vector_send(embedding)), else_=None).label("embedding")


def float32s(wire: bytes) -> bytes:
    """A vector from pgvector's binary form (a 2-byte dimension, 2 unused bytes, big-endian float32s) as
    little-endian float32s."""
    return numpy.frombuffer(wire, dtype=">f4", offset=4).astype("<f4").tobytes()


def conversations(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> AsyncIterator[Sequence[Any]]:
    """The agent's conversations, oldest first (then by name)."""
    statement = (
        select(Conversation)
        .where(Conversation.owner_id == owner_id, Conversation.agent_id == agent_id)
        .order_by(Conversation.created_at, Conversation.name)
    )
    return _batches(session, statement)


def messages(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, *, model: str | None
) -> AsyncIterator[Sequence[Any]]:
    """The agent's messages, conversation by conversation (in the order of `conversations`), each in order:
    rows (conversation_id, ordinal, role, content, text, external_key, search_call, created_at, embedding)."""
    columns: list[Any] = [
        Message.conversation_id,
        Message.ordinal,
        Message.role,
        Message.content,
        Message.text,
        Message.external_key,
        Message.search_call,
        Message.created_at,
    ]
    if model is not None:
        columns.append(_wire_vector(Message.embedding_model == model, Message.embedding))
    statement = (
        select(*columns)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.owner_id == owner_id, Message.agent_id == agent_id)
        .order_by(Conversation.created_at, Conversation.name, Message.ordinal)
    )
    return _batches(session, statement)


def summaries(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> AsyncIterator[Sequence[Any]]:
    """The agent's summaries, conversation by conversation, oldest first: rows (conversation_id, first_ordinal,
    last_ordinal, evicted, text, kind, created_at)."""
    statement = (
        select(
            Summary.conversation_id,
            Summary.first_ordinal,
            Summary.last_ordinal,
            Summary.evicted,
            Summary.text,
            Summary.kind,
            Summary.created_at,
        )
        .join(Conversation, Conversation.id == Summary.conversation_id)
        .where(Summary.owner_id == owner_id, Summary.agent_id == agent_id)
        .order_by(Conversation.created_at, Conversation.name, Summary.id)
    )
    return _batches(session, statement)


async def counts(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, int]:
    """How many passages, conversations, messages and summaries the agent has."""
    found: dict[str, int] = {}
    for name, table in (
        ("passages", Passage),
        ("conversations", Conversation),
        ("messages", Message),
        ("summaries", Summary),
    ):
        statement = (
            select(func.count()).select_from(table).where(table.owner_id == owner_id, table.agent_id == agent_id)
        )
        found[name] = int(await session.scalar(statement) or 0)
    return found


# Writes (an import)


class WireVector(bytes):
    """A vector in pgvector's binary form (a 2-byte dimension, 2 unused bytes, big-endian float32s), bound as a
    `vector` parameter as it is: formatting vectors as text took ~1 ms each, longer than all else an import does."""

    @classmethod
    def of_float32s(cls, raw: bytes) -> WireVector:
        """From little-endian float32s (as Engram's files hold them)."""
        values = numpy.frombuffer(raw, dtype="<f4")
        return cls(struct.pack(">HH", len(values), 0) + values.astype(">f4").tobytes())


class _WireVectorDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> Buffer:
        return bytes(obj)


WIRED = "wired_embedding"


class _Wired(UserDefinedType[bytes]):
    """A `vector` parameter that SQLAlchemy hands to psycopg as it is (the column's own type formats it as text)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "vector"


def _wired(row: dict[str, Any]) -> dict[str, Any]:
    values = {key: value for key, value in row.items() if key != "embedding"}
    return values | {WIRED: row.get("embedding")}


async def _send_wire_vectors(session: AsyncSession) -> None:
    """Let the session's connection bind WireVector as pgvector's binary `vector` (WireVector being bytes, psycopg
    would send it as bytea otherwise)."""
    connection = await (await session.connection()).get_raw_connection()
    driver = connection.driver_connection
    assert driver is not None
    oid = await session.scalar(text("SELECT CAST(CAST('vector' AS regtype) AS oid)"))
    driver.adapters.register_dumper(WireVector, type("WireVectorDumper", (_WireVectorDumper,), {"oid": oid}))


async def insert_agent(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    name: str,
    description: str,
    system: str,
    llm: dict[str, Any],
    tags: list[str],
    created_at: datetime,
    updated_at: datetime,
) -> uuid.UUID | None:
    """The new agent's id; None when the owner already has an agent of that name."""
    return await session.scalar(
        insert(Agent)
        .values(
            id=uuid.uuid4(),
            owner_id=owner_id,
            name=name,
            description=description,
            system=system,
            llm=llm,
            tags=tags,
            created_at=created_at,
            updated_at=updated_at,
        )
        .on_conflict_do_nothing(constraint="agents_owner_name_key")
        .returning(Agent.id)
    )


async def insert_block(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    label: str,
    value: str,
    char_limit: int,
    description: str,
    read_only: bool,
    standalone: bool,
    version: int,
    created_at: datetime,
    updated_at: datetime,
) -> uuid.UUID:
    block_id = uuid.uuid4()
    await session.execute(
        insert(Block).values(
            id=block_id,
            owner_id=owner_id,
            label=label,
            value=value,
            char_limit=char_limit,
            description=description,
            read_only=read_only,
            standalone=standalone,
            version=version,
            created_at=created_at,
            updated_at=updated_at,
        )
    )
    return block_id


async def link_blocks(session: AsyncSession, agent_id: uuid.UUID, blocks: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Attach (block id, label) pairs to the agent, in this order."""
    if blocks:
        await session.execute(
            insert(AgentBlock),
            [
                {"agent_id": agent_id, "block_id": block_id, "label": label, "position": position}
                for position, (block_id, label) in enumerate(blocks)
            ],
        )


async def insert_block_history(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Rows of block_id, version, value, actor, created_at."""
    if rows:
        await session.execute(insert(BlockHistory), list(rows))


async def insert_passages(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> None:
    """Store passages (text, tags, metadata, source, created_at, and embedding (a WireVector) with embedding_model,
    or None for both); a text the agent holds already is skipped (`counts` says how many the agent has)."""
    if not rows:
        return
    values = [
        {"id": uuid.uuid4(), "owner_id": owner_id, "agent_id": agent_id, "content_hash": sha256_hex(row["text"])}
        | _wired(row)
        for row in rows
    ]
    await _send_wire_vectors(session)
    table = table_of(Passage)
    statement = (
        insert(table)
        .values(embedding=bindparam(WIRED, type_=_Wired()))
        .on_conflict_do_nothing(constraint="passages_agent_content_key")
    )
    # Without RETURNING, psycopg sends one prepared statement per row in a pipeline: several times faster than
    # the multi-row VALUES SQLAlchemy would build, whose every placeholder psycopg parses.
    await session.execute(statement, values)


async def insert_conversation(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    name: str,
    title: str,
    source: str,
    context_start: int,
    created_at: datetime,
) -> uuid.UUID:
    conversation_id = uuid.uuid4()
    await session.execute(
        insert(Conversation).values(
            id=conversation_id,
            owner_id=owner_id,
            agent_id=agent_id,
            name=name,
            title=title,
            source=source,
            context_start=context_start,
            created_at=created_at,
            message_count=0,
        )
    )
    return conversation_id


async def insert_messages(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> None:
    """Store messages as they were (conversation_id, ordinal, role, content, text, external_key, search_call,
    created_at, embedding (a WireVector or None), embedding_model); `count_messages` then updates their
    conversations."""
    if rows:
        await _send_wire_vectors(session)
        values = [{"id": uuid.uuid4(), "owner_id": owner_id, "agent_id": agent_id} | _wired(row) for row in rows]
        statement = insert(table_of(Message)).values(embedding=bindparam(WIRED, type_=_Wired()))
        await session.execute(statement, values)


async def count_messages(session: AsyncSession, conversation_ids: Sequence[uuid.UUID]) -> None:
    """Set each conversation's message count and last message time from its messages."""
    if not conversation_ids:
        return
    await session.execute(
        update(Conversation)
        .where(Conversation.id.in_(list(conversation_ids)))
        .values(
            message_count=select(func.coalesce(func.max(Message.ordinal), 0))
            .where(Message.conversation_id == Conversation.id)
            .scalar_subquery(),
            last_message_at=select(func.max(Message.created_at))
            .where(Message.conversation_id == Conversation.id)
            .scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    )


async def insert_summaries(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> None:
    """Rows of conversation_id, first_ordinal, last_ordinal, evicted, text, kind, created_at, in order."""
    if rows:
        await session.execute(insert(Summary), [{"owner_id": owner_id, "agent_id": agent_id, **row} for row in rows])


# The reference MCP memory server's graph


async def entity_passages(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, names: Sequence[str]
) -> dict[str, list[tuple[uuid.UUID, str]]]:
    """(id, content hash) of the agent's passages imported for each of these graph entities."""
    rows = await session.execute(
        select(Passage.meta["name"].astext, Passage.id, Passage.content_hash).where(
            Passage.owner_id == owner_id,
            Passage.agent_id == agent_id,
            Passage.meta["graph"].astext == "entity",
            Passage.meta["name"].astext.in_(list(names)),
        )
    )
    found: dict[str, list[tuple[uuid.UUID, str]]] = {}
    for name, passage_id, content_hash in rows:
        found.setdefault(name, []).append((passage_id, content_hash))
    return found


async def delete_passages(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> None:
    if ids:
        await session.execute(
            delete(Passage).where(Passage.owner_id == owner_id, Passage.agent_id == agent_id, Passage.id.in_(list(ids)))
        )
