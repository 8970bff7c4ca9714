"""Archival passages: insert with de-duplication, delete, list, and their search filter.

Every query takes the owner and the agent, except: `stale` and `count_stale` take the owner and an optional
agent (None: all the owner's agents); `fetch` reads passages by id, the ids a search of one owner's agent
returned; `models_in_use` counts every principal's passages by embedding model, for the check at start.
storage.search runs the search legs over this table.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage import search, sha256_hex
from engram.storage.paging import Cursor, keyset_page
from engram.storage.schema import Passage, table_of


@dataclass(frozen=True)
class NewPassage:
    text: str
    embedding: Any
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None


@dataclass(frozen=True)
class PassageFilter:
    """Filters applied in SQL to both search legs."""

    tags: list[str] = field(default_factory=list)
    match_all_tags: bool = False
    start: datetime | None = None
    end: datetime | None = None

    def sql(self) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = []
        values: dict[str, Any] = {}
        if self.tags:
            clauses.append("tags @> CAST(:tags AS text[])" if self.match_all_tags else "tags && CAST(:tags AS text[])")
            values["tags"] = list(self.tags)
        return search.conditions(clauses, values, start=self.start, end=self.end)


async def existing_ids(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, hashes: Sequence[str]
) -> dict[str, uuid.UUID]:
    rows = await session.execute(
        select(Passage.content_hash, Passage.id).where(
            Passage.owner_id == owner_id, Passage.agent_id == agent_id, Passage.content_hash.in_(list(hashes))
        )
    )
    return {row.content_hash: row.id for row in rows}


# Built once (building the statement for each call cost more CPU than running it), run with one parameter set
# per passage (SQLAlchemy sends them as one multi-row INSERT); RETURNING gives the ids of those inserted.
_passages = table_of(Passage)
_INSERT_NEW = (
    insert(_passages).on_conflict_do_nothing(constraint="passages_agent_content_key").returning(_passages.c.id)
)


async def insert_many(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, model: str, passages: Sequence[NewPassage]
) -> list[tuple[uuid.UUID, bool]]:
    """Insert the passages; identical text already stored for the agent is kept. Returns (id, created)."""
    if not passages:
        return []
    rows = [
        {
            "id": uuid.uuid4(),
            "owner_id": owner_id,
            "agent_id": agent_id,
            "text": passage.text,
            "content_hash": sha256_hex(passage.text),
            "tags": passage.tags,
            "metadata": passage.metadata,
            "source": passage.source,
            "embedding": passage.embedding,
            "embedding_model": model,
        }
        for passage in passages
    ]
    created = set((await session.scalars(_INSERT_NEW, rows)).all())
    if len(created) == len(rows):  # every one is new: no need to look up the ids of those already stored
        return [(row["id"], True) for row in rows]
    known = await existing_ids(session, owner_id, agent_id, [row["content_hash"] for row in rows])
    return [(known[row["content_hash"]], row["id"] in created) for row in rows]


async def delete_passage(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, passage_id: uuid.UUID
) -> bool:
    result = await session.execute(
        delete(Passage)
        .where(Passage.owner_id == owner_id, Passage.agent_id == agent_id, Passage.id == passage_id)
        .returning(Passage.id)
    )
    return result.first() is not None


async def delete_source(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, source: str) -> int:
    result = await session.execute(
        delete(Passage)
        .where(Passage.owner_id == owner_id, Passage.agent_id == agent_id, Passage.source == source)
        .returning(Passage.id)
    )
    return len(result.all())


async def source_versions(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, source: str) -> set[str]:
    """The file hashes recorded for passages ingested from `source`."""
    rows = await session.scalars(
        select(Passage.meta["file_sha256"].astext)
        .where(Passage.owner_id == owner_id, Passage.agent_id == agent_id, Passage.source == source)
        .distinct()
    )
    return {row for row in rows if row}


async def recent(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, *, limit: int) -> list[Passage]:
    rows = await session.scalars(
        select(Passage)
        .where(Passage.owner_id == owner_id, Passage.agent_id == agent_id)
        .order_by(Passage.created_at.desc(), Passage.id)
        .limit(limit)
    )
    return list(rows)


async def count(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.count()).select_from(Passage).where(Passage.owner_id == owner_id, Passage.agent_id == agent_id)
    )
    return int(total or 0)


async def fetch(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Passage]:
    rows = await session.scalars(select(Passage).where(Passage.id.in_(list(ids))))
    return {row.id: row for row in rows}


async def stale(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID | None, model: str, *, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(id, agent, text) of passages not embedded with `model` (another model, or none), oldest first."""
    statement = select(Passage.id, Passage.agent_id, Passage.text).where(
        Passage.owner_id == owner_id,
        (Passage.embedding_model.is_(None)) | (Passage.embedding_model != model),
    )
    if agent_id is not None:
        statement = statement.where(Passage.agent_id == agent_id)
    rows = await session.execute(statement.order_by(Passage.created_at, Passage.id).limit(limit))
    return [(row.id, row.agent_id, row.text) for row in rows]


async def count_stale(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID | None, model: str) -> int:
    statement = (
        select(func.count())
        .select_from(Passage)
        .where(
            Passage.owner_id == owner_id,
            (Passage.embedding_model.is_(None)) | (Passage.embedding_model != model),
        )
    )
    if agent_id is not None:
        statement = statement.where(Passage.agent_id == agent_id)
    return int(await session.scalar(statement) or 0)


async def models_in_use(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT coalesce(embedding_model, '(none)') AS model, count(*) AS n FROM passages GROUP BY 1")
    )
    return {row.model: int(row.n) for row in rows}


async def get(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, passage_id: uuid.UUID) -> Passage | None:
    return await session.scalar(
        select(Passage).where(Passage.owner_id == owner_id, Passage.agent_id == agent_id, Passage.id == passage_id)
    )


async def page(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID, cursor: Cursor, *, containing: str | None = None
) -> list[Passage]:
    """The agent's passages in order of storing, a keyset page at a time; with `containing`, only those whose
    text holds it (case-insensitive)."""
    query = select(Passage).where(Passage.owner_id == owner_id, Passage.agent_id == agent_id)
    if containing:
        escaped = containing.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Passage.text.ilike(f"%{escaped}%", escape="\\"))
    return await keyset_page(session, query, Passage.created_at, Passage.id, cursor, what="passage")
