"""Hybrid search, one implementation for archival passages and recall messages.

Both tables have `owner_id`, `agent_id`, `embedding` (a vector of any dimension), `embedding_model` and a
full-text `tsv`. The vector leg scans an agent's rows exactly when they are few (fast, and never starved
by pgvector's post-filtering), and uses the per-dimension HNSW index with iterative scans when they are
many, falling back to the exact scan if the index returns too few rows. The keyword leg is PostgreSQL
full-text search. `fuse` merges the legs' rankings.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

K = TypeVar("K", bound=Hashable)

RRF_K = 60
HNSW_EF_SEARCH = 100
LARGE_AGENT_TTL = 60.0  # seconds an agent found larger than the exact-scan limit is assumed to stay so
SEARCHABLE_TABLES = frozenset({"passages", "messages"})
_large_agents: dict[tuple[str, uuid.UUID, str, int], float] = {}  # (table, agent, model, limit) -> look again at
_indexed: set[tuple[str, str, int]] = set()  # (database, table, dimension) known to have their HNSW index

KeywordMatch = Literal["all", "any"]


class SqlFilter(Protocol):
    """Extra conditions for both legs: ` AND ...` clauses over the table's columns, and their values."""

    def sql(self) -> tuple[str, dict[str, Any]]: ...


def conditions(
    clauses: list[str], values: dict[str, Any], *, start: datetime | None, end: datetime | None
) -> tuple[str, dict[str, Any]]:
    """A filter's ` AND ...` text from its clauses, plus the creation-time range both tables share."""
    if start is not None:
        clauses.append("created_at >= :start")
        values["start"] = start
    if end is not None:
        clauses.append("created_at <= :end")
        values["end"] = end
    return "".join(f" AND {clause}" for clause in clauses), values


def _checked(table: str) -> str:
    if table not in SEARCHABLE_TABLES:
        raise ValueError(f"{table!r} is not a searchable table")
    return table


async def vector_leg(
    session: AsyncSession,
    table: str,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    query: Any,
    dimension: int,
    model: str,
    where: SqlFilter,
    limit: int,
    exact_scan_limit: int,
) -> list[uuid.UUID]:
    """Ids of the agent's rows nearest to `query` (cosine), nearest first.

    Agents with at most `exact_scan_limit` rows of this model are scanned exactly.
    """
    table = _checked(table)
    filters, values = where.sql()
    values |= {"owner": owner_id, "agent": agent_id, "model": model, "limit": limit, "query": query}
    if await _is_large(session, table, agent_id, model, exact_scan_limit):
        await session.execute(
            text(
                "SELECT set_config('hnsw.ef_search', :ef, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
            ),
            {"ef": str(max(HNSW_EF_SEARCH, limit))},
        )
        indexed = text(
            f"SELECT id FROM (SELECT id, (embedding::vector({dimension})) <=> :query AS distance FROM {table} "
            f"WHERE vector_dims(embedding) = {dimension} AND agent_id = :agent AND owner_id = :owner "
            f"AND embedding_model = :model{filters} "
            f"ORDER BY (embedding::vector({dimension})) <=> :query LIMIT :limit) nearest ORDER BY distance"
        ).bindparams(bindparam("query", type_=Vector()))
        found = list((await session.scalars(indexed, values)).all())
        if len(found) == limit:
            return found
    # Ordering by the bare column (not the indexed expression) keeps the HNSW index out of this plan.
    exact = text(
        f"SELECT id FROM {table} "
        f"WHERE agent_id = :agent AND owner_id = :owner AND embedding_model = :model{filters} "
        "ORDER BY embedding <=> :query, id LIMIT :limit"
    ).bindparams(bindparam("query", type_=Vector()))
    return list((await session.scalars(exact, values)).all())


async def keyword_leg(
    session: AsyncSession,
    table: str,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    query: str,
    where: SqlFilter,
    limit: int,
    match: KeywordMatch = "all",
) -> list[uuid.UUID]:
    """Ids of the agent's rows matching `query`'s words (stemmed, stop words ignored), best first.

    "all": every word must occur, with web-search syntax ("quoted phrase", -exclude, or); precise, right
    for notes where the vector leg handles paraphrases. "any": at least one word, ranked by how many and
    how close together; right for conversation turns, which rarely repeat a question's words all at once.
    """
    table = _checked(table)
    filters, values = where.sql()
    values |= {"owner": owner_id, "agent": agent_id, "query": query, "limit": limit}
    tsquery = (
        "websearch_to_tsquery('english', :query)"
        if match == "all"
        else "CAST(replace(CAST(plainto_tsquery('english', :query) AS text), ' & ', ' | ') AS tsquery)"
    )
    statement = text(
        f"SELECT id FROM {table}, {tsquery} AS q "
        f"WHERE agent_id = :agent AND owner_id = :owner AND tsv @@ q{filters} "
        "ORDER BY ts_rank_cd(tsv, q) DESC, id LIMIT :limit"
    )
    return list((await session.scalars(statement, values)).all())


async def _is_large(session: AsyncSession, table: str, agent_id: uuid.UUID, model: str, limit: int) -> bool:
    """Whether the agent has more than `limit` rows of this model in `table` (then the index pays off).

    The probe counts at most limit + 1 rows; a "large" answer is remembered for LARGE_AGENT_TTL seconds.
    Results never depend on it: the index path falls back to an exact scan when it finds too few rows.
    """
    key = (table, agent_id, model, limit)
    if _large_agents.get(key, 0.0) > time.monotonic():
        return True
    probe = text(
        f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE agent_id = :agent AND embedding_model = :model "
        "LIMIT :limit) enough"
    )
    found = await session.scalar(probe, {"agent": agent_id, "model": model, "limit": limit + 1})
    if int(found or 0) > limit:
        _large_agents[key] = time.monotonic() + LARGE_AGENT_TTL
        return True
    return False


async def ensure_vector_index(connection: AsyncConnection, table: str, dimension: int) -> None:
    """Create `table`'s HNSW index for vectors of this dimension if the database lacks it (safe across
    processes). Known indexes are remembered per database, so writes do not touch the catalog (or the
    table lock that CREATE INDEX takes) again.
    """
    table = _checked(table)
    key = (str(connection.engine.url), table, dimension)
    if key in _indexed:
        return
    name = f"ix_{table}_embedding_{dimension}"
    exists = "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :name"
    if not (await connection.execute(text(exists), {"name": name})).first():
        await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
        await connection.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                f"USING hnsw ((embedding::vector({dimension})) vector_cosine_ops) "
                f"WHERE vector_dims(embedding) = {dimension}"
            )
        )
    _indexed.add(key)


async def set_embeddings(session: AsyncSession, table: str, rows: Sequence[tuple[uuid.UUID, Any]], model: str) -> None:
    """Store vectors made by `model` for the given row ids."""
    table = _checked(table)
    statement = text(f"UPDATE {table} SET embedding = :embedding, embedding_model = :model WHERE id = :id").bindparams(
        bindparam("embedding", type_=Vector())
    )
    await session.execute(
        statement, [{"embedding": embedding, "model": model, "id": row_id} for row_id, embedding in rows]
    )


def fuse(rankings: Sequence[tuple[Sequence[K], float]], *, k: int = RRF_K) -> list[tuple[K, float]]:
    """Weighted reciprocal-rank fusion of ranked id lists; scores scaled so that 1.0 is first in every list.

    Ties are broken by the id's text, so the order (and so pagination) is stable.
    """
    scores: dict[K, float] = {}
    for ids, weight in rankings:
        for rank, key in enumerate(ids, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    best = sum(weight for _, weight in rankings) / (k + 1)
    ordered = sorted(scores.items(), key=lambda item: (-item[1], str(item[0])))
    return [(key, round(score / best, 4) if best else 0.0) for key, score in ordered]
