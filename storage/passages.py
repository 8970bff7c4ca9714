"""Archival passages: insert with de-duplication, delete, list, and the two search legs.

Every query takes the owner and the agent. The vector leg scans an agent's passages exactly when they
are few (fast, and never starved by pgvector's post-filtering), and uses the HNSW index with iterative
scans when they are many, falling back to the exact scan if the index returns too few rows.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.schema import Passage

HNSW_EF_SEARCH = 100
LARGE_AGENT_TTL = 60.0  # seconds an agent found larger than the exact-scan limit is assumed to stay so
_large_agents: dict[tuple[uuid.UUID, str, int], float] = {}  # (agent, model, limit) -> when to look again
_indexed: set[tuple[str, int]] = set()  # (database, dimension) pairs known to have their HNSW index


def content_hash(text_value: str) -> str:
    return hashlib.sha256(text_value.encode()).hexdigest()


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
        if self.start is not None:
            clauses.append("created_at >= :start")
            values["start"] = self.start
        if self.end is not None:
            clauses.append("created_at <= :end")
            values["end"] = self.end
        return "".join(f" AND {clause}" for clause in clauses), values


async def existing_ids(session: AsyncSession, agent_id: uuid.UUID, hashes: Sequence[str]) -> dict[str, uuid.UUID]:
    rows = await session.execute(
        select(Passage.content_hash, Passage.id).where(
            Passage.agent_id == agent_id, Passage.content_hash.in_(list(hashes))
        )
    )
    return {row.content_hash: row.id for row in rows}


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
            "content_hash": content_hash(passage.text),
            "tags": passage.tags,
            "metadata": passage.metadata,
            "source": passage.source,
            "embedding": passage.embedding,
            "embedding_model": model,
        }
        for passage in passages
    ]
    created = set(
        (
            await session.scalars(
                insert(Passage)
                .values(rows)
                .on_conflict_do_nothing(constraint="passages_agent_content_key")
                .returning(Passage.id)
            )
        ).all()
    )
    known = await existing_ids(session, agent_id, [row["content_hash"] for row in rows])
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


async def source_versions(session: AsyncSession, agent_id: uuid.UUID, source: str) -> set[str]:
    """The file hashes recorded for passages ingested from `source`."""
    rows = await session.scalars(
        select(Passage.meta["file_sha256"].astext)
        .where(Passage.agent_id == agent_id, Passage.source == source)
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


async def vector_leg(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    query: Any,
    dimension: int,
    model: str,
    where: PassageFilter,
    limit: int,
    exact_scan_limit: int,
) -> list[uuid.UUID]:
    """Ids of the agent's passages nearest to `query` (cosine), nearest first.

    Agents with at most `exact_scan_limit` passages of this model are scanned exactly.
    """
    filters, values = where.sql()
    values |= {"owner": owner_id, "agent": agent_id, "model": model, "limit": limit, "query": query}
    if await _is_large(session, agent_id, model, exact_scan_limit):
        await session.execute(
            text(
                "SELECT set_config('hnsw.ef_search', :ef, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
            ),
            {"ef": str(max(HNSW_EF_SEARCH, limit))},
        )
        indexed = text(
            f"SELECT id FROM (SELECT id, (embedding::vector({dimension})) <=> :query AS distance FROM passages "
            f"WHERE vector_dims(embedding) = {dimension} AND agent_id = :agent AND owner_id = :owner "
            f"AND embedding_model = :model{filters} "
            f"ORDER BY (embedding::vector({dimension})) <=> :query LIMIT :limit) nearest ORDER BY distance"
        ).bindparams(bindparam("query", type_=Vector()))
        found = list((await session.scalars(indexed, values)).all())
        if len(found) == limit:
            return found
    # Ordering by the bare column (not the indexed expression) keeps the HNSW index out of this plan.
    exact = text(
        "SELECT id FROM passages "
        f"WHERE agent_id = :agent AND owner_id = :owner AND embedding_model = :model{filters} "
        "ORDER BY embedding <=> :query, id LIMIT :limit"
    ).bindparams(bindparam("query", type_=Vector()))
    return list((await session.scalars(exact, values)).all())


async def keyword_leg(
    session: AsyncSession,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    query: str,
    where: PassageFilter,
    limit: int,
) -> list[uuid.UUID]:
    """Ids of the agent's passages containing every word of `query` (stemmed, stop words ignored), best first.

    Web-search syntax applies ("quoted phrase", -exclude, or). Requiring every word keeps this leg precise:
    it speaks up for exact names, codes and numbers and stays silent on paraphrases, which the vector leg
    handles. Matching any word instead let common words drown the fused ranking (see bench/archival_quality.py).
    """
    filters, values = where.sql()
    values |= {"owner": owner_id, "agent": agent_id, "query": query, "limit": limit}
    statement = text(
        "SELECT id FROM passages, websearch_to_tsquery('english', :query) AS q "
        f"WHERE agent_id = :agent AND owner_id = :owner AND tsv @@ q{filters} "
        "ORDER BY ts_rank_cd(tsv, q) DESC, id LIMIT :limit"
    )
    return list((await session.scalars(statement, values)).all())


async def _is_large(session: AsyncSession, agent_id: uuid.UUID, model: str, limit: int) -> bool:
    """Whether the agent has more than `limit` passages of this model (then the index pays off).

    The probe counts at most limit + 1 rows; a "large" answer is remembered for LARGE_AGENT_TTL seconds.
    Results never depend on it: the index path falls back to an exact scan when it finds too few rows.
    """
    key = (agent_id, model, limit)
    if _large_agents.get(key, 0.0) > time.monotonic():
        return True
    probe = text(
        "SELECT count(*) FROM (SELECT 1 FROM passages WHERE agent_id = :agent AND embedding_model = :model "
        "LIMIT :limit) enough"
    )
    found = await session.scalar(probe, {"agent": agent_id, "model": model, "limit": limit + 1})
    if int(found or 0) > limit:
        _large_agents[key] = time.monotonic() + LARGE_AGENT_TTL
        return True
    return False


async def ensure_vector_index(connection: AsyncConnection, dimension: int) -> None:
    """Create the HNSW index for vectors of this dimension if the database lacks it (safe across processes).

    Known indexes are remembered per database, so inserts do not touch the catalog (or the table lock
    that CREATE INDEX takes) again.
    """
    key = (str(connection.engine.url), dimension)
    if key in _indexed:
        return
    name = f"ix_passages_embedding_{dimension}"
    exists = "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :name"
    if not (await connection.execute(text(exists), {"name": name})).first():
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 0x70617373 + dimension})
        await connection.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {name} ON passages "
                f"USING hnsw ((embedding::vector({dimension})) vector_cosine_ops) "
                f"WHERE vector_dims(embedding) = {dimension}"
            )
        )
    _indexed.add(key)


async def stale(
    session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID | None, model: str, *, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """Passages not embedded with `model` (another model, or none), oldest first."""
    statement = select(Passage.id, Passage.text).where(
        Passage.owner_id == owner_id,
        (Passage.embedding_model.is_(None)) | (Passage.embedding_model != model),
    )
    if agent_id is not None:
        statement = statement.where(Passage.agent_id == agent_id)
    rows = await session.execute(statement.order_by(Passage.created_at, Passage.id).limit(limit))
    return [(row.id, row.text) for row in rows]


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


async def set_embedding(session: AsyncSession, passage_id: uuid.UUID, embedding: Any, model: str) -> None:
    await session.execute(
        text("UPDATE passages SET embedding = :embedding, embedding_model = :model WHERE id = :id").bindparams(
            bindparam("embedding", type_=Vector())
        ),
        {"embedding": embedding, "model": model, "id": passage_id},
    )


async def models_in_use(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT coalesce(embedding_model, '(none)') AS model, count(*) AS n FROM passages GROUP BY 1")
    )
    return {row.model: int(row.n) for row in rows}
