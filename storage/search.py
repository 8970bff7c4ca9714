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
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

K = TypeVar("K", bound=Hashable)

RRF_K = 60
# HNSW: m 32 and ef_construction 400 (pgvector's defaults are 16 and 64), searched with ef_search 400,
# took recall@10 against an exact scan from 0.82 to 0.995 at 100k templated passages, at ~4 ms a query.
# With m 16 the graph grown by inserts (or built with too little maintenance_work_mem) reached 0.94, some
# queries finding none of their true neighbours. Building and inserting cost more (100k rows: ~100 s).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 400
HNSW_EF_SEARCH = 400
LARGE_AGENT_TTL = 60.0  # seconds an agent found larger than the exact-scan limit is assumed to stay so
# Seconds an agent found within the limit is trusted to stay so: probing costs a scan of up to the limit's
# rows (8 ms at 10k). A search trusts it; a write trusts it while the rows probed plus those this process has
# written since stay within the limit (so it marks an agent it takes past the limit at once; writes of other
# processes are seen by the next probe, within these seconds). A search that trusts a stale answer scans
# exactly, which is slower, never wrong.
SMALL_AGENT_TTL = 10.0
STATISTICS_TTL = 300.0  # seconds the table statistics BM25 reads are reused

Table = Literal["passages", "messages"]
SEARCHABLE_TABLES: frozenset[str] = frozenset({"passages", "messages"})
KeywordMatch = Literal["all", "any"]
CACHE_KEY = "engram.search_cache"  # where a database's session factory puts its SearchCache in Session.info


@dataclass
class SearchCache:
    """What search learns about one database and reuses: the HNSW indexes known to exist, the agents known
    to have outgrown exact scans (until when), and the common lexemes BM25 weighs (until when).

    It belongs to the `Database` (its session factory hands it to every session): each database opened,
    by a new process or by a test, checks the catalog afresh, so an index dropped meanwhile is created again.
    """

    indexed: set[tuple[str, int]] = field(default_factory=set)  # (table, dimension)
    large_agents: dict[tuple[str, uuid.UUID, str, int], float] = field(default_factory=dict)  # -> until
    # -> (until, rows probed plus rows written since)
    small_agents: dict[tuple[str, uuid.UUID, str, int], tuple[float, int]] = field(default_factory=dict)
    statistics: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)  # table -> (until, lexemes)


def cache_of(session: AsyncSession) -> SearchCache:
    found = session.info.get(CACHE_KEY)
    if not isinstance(found, SearchCache):
        raise RuntimeError("this session's factory has no SearchCache; open the database with open_database")
    return found


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


def _checked(table: Table) -> Table:
    """Table names are interpolated into SQL: the Literal type says which, and this makes sure at run time."""
    if table not in SEARCHABLE_TABLES:
        raise ValueError(f"{table!r} is not a searchable table")
    return table


Scored = list[tuple[uuid.UUID, float]]


VectorSource = Callable[[], Awaitable[Any]]  # the query's vector, awaited only once the vector leg needs it


async def run_legs(
    session: AsyncSession,
    table: Table,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    query: str,
    vector: VectorSource | None,
    keywords: KeywordMatch | None,
    model: str,
    where: SqlFilter,
    limit: int,
    exact_scan_limit: int,
) -> tuple[Scored | None, Scored | None]:
    """The vector leg's and the keyword leg's (id, score) lists, each None when not asked for (no `vector`,
    no `keywords` mode).

    What needs no vector runs first: the keyword leg and the probe of the agent's size read the database
    while the query is still being embedded (in a worker thread), and `vector` is awaited last."""
    # One connection, one statement at a time: running the legs on two connections was slower on 2 cores
    # (bench.archival: 26 vs 23 ms p50 at 10k passages), the embedding model already using both.
    matching = None
    if keywords is not None:
        matching = await keyword_leg(
            session, table, owner_id, agent_id, query=query, where=where, limit=limit, match=keywords
        )
    nearest = None
    if vector is not None:
        large = await _is_large(session, table, agent_id, model, exact_scan_limit)
        query_vector = await vector()
        nearest = await vector_leg(
            session,
            table,
            owner_id,
            agent_id,
            query=query_vector,
            dimension=len(query_vector),
            model=model,
            where=where,
            limit=limit,
            exact_scan_limit=exact_scan_limit,
            large=large,
        )
    return nearest, matching


async def vector_leg(
    session: AsyncSession,
    table: Table,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    query: Any,
    dimension: int,
    model: str,
    where: SqlFilter,
    limit: int,
    exact_scan_limit: int,
    large: bool | None = None,
) -> list[tuple[uuid.UUID, float]]:
    """(id, cosine similarity) of the agent's rows nearest to `query`, nearest first.

    Agents with at most `exact_scan_limit` rows of this model are scanned exactly (`large`: whether the
    caller has found it has more, probed here when not given).
    """
    table = _checked(table)
    filters, values = where.sql()
    values |= {"owner": owner_id, "agent": agent_id, "model": model, "limit": limit, "query": query}
    if large is None:
        large = await _is_large(session, table, agent_id, model, exact_scan_limit)
    if large:
        await session.execute(
            text(
                "SELECT set_config('hnsw.ef_search', :ef, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
            ),
            {"ef": str(max(HNSW_EF_SEARCH, limit))},
        )
        indexed = text(
            f"SELECT id, distance FROM (SELECT id, (embedding::vector({dimension})) <=> :query AS distance "
            f"FROM {table} WHERE vector_dims(embedding) = {dimension} AND agent_id = :agent AND owner_id = :owner "
            f"AND embedding_model = :model{filters} "
            f"ORDER BY (embedding::vector({dimension})) <=> :query LIMIT :limit) nearest ORDER BY distance, id"
        ).bindparams(bindparam("query", type_=Vector()))
        found = [(row.id, 1.0 - row.distance) for row in await session.execute(indexed, values)]
        if len(found) == limit:
            return found
    # Ordering by the bare column (not the indexed expression) keeps the HNSW index out of this plan.
    exact = text(
        f"SELECT id, embedding <=> :query AS distance FROM {table} "
        f"WHERE agent_id = :agent AND owner_id = :owner AND embedding_model = :model{filters} "
        "ORDER BY embedding <=> :query, id LIMIT :limit"
    ).bindparams(bindparam("query", type_=Vector()))
    return [(row.id, 1.0 - row.distance) for row in await session.execute(exact, values)]


async def keyword_leg(
    session: AsyncSession,
    table: Table,
    owner_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    query: str,
    where: SqlFilter,
    limit: int,
    match: KeywordMatch = "all",
) -> list[tuple[uuid.UUID, float]]:
    """(id, score) of the agent's rows matching `query`'s words (stemmed, stop words ignored), best first.

    "all": every word must occur, with web-search syntax ("quoted phrase", -exclude, or); precise, right
    for notes where the vector leg handles paraphrases. "any": at least one word, ranked by BM25 (see
    `_any_word_leg`); right for conversation turns, which rarely repeat a question's words all at once.
    """
    table = _checked(table)
    filters, values = where.sql()
    values |= {"owner": owner_id, "agent": agent_id, "query": query, "limit": limit}
    if match == "any":
        return await _any_word_leg(session, table, filters, values)
    statement = text(
        f"SELECT id, ts_rank_cd(tsv, q) AS score FROM {table}, websearch_to_tsquery('english', :query) AS q "
        f"WHERE agent_id = :agent AND owner_id = :owner AND tsv @@ q{filters} "
        "ORDER BY score DESC, id LIMIT :limit"
    )
    return [(row.id, float(row.score)) for row in await session.execute(statement, values)]


# How many rows an agent has, for BM25's document frequencies (conversations keep a count).
ROW_COUNTS: dict[Table, str] = {
    "messages": "SELECT coalesce(sum(message_count), 0) FROM conversations WHERE agent_id = :agent",
    "passages": "SELECT count(*) FROM passages WHERE agent_id = :agent",
}
COMMON_ROWS = 1000.0  # a word estimated in more rows than this only matches together with rarer words
MAX_MATCHING_ROWS = 2000  # rows a keyword query scores at most (when even its rarest words are everywhere)
BM25_K1 = 1.2
# How much a longer row's matches count for less. Conversation turns are not padded documents: a longer turn
# says more, and on real dialogue (bench/locomo_dev.py) full normalisation (0.75) cost 0.03 of recall@10
# against none; passages keep the textbook value.
BM25_B: dict[Table, float] = {"messages": 0.0, "passages": 0.75}
MAX_QUERY_TERMS = 24


async def _any_word_leg(
    session: AsyncSession, table: Table, filters: str, values: dict[str, Any]
) -> list[tuple[uuid.UUID, float]]:
    """BM25 over the rows holding any of the query's lexemes (presence, not counts: turns are short); the
    score is divided by the sum of every query word's weight, so 1.0 means all words of average rows.

    A rare word (a name, a place) outweighs common ones, which PostgreSQL's ts_rank cannot do: it knows
    no document frequencies. They are counted here over the matching rows, in the same statement.
    """
    lexemes = list(
        await session.scalars(
            text("SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', :query)) ORDER BY 1 LIMIT :most"),
            {"query": values["query"], "most": MAX_QUERY_TERMS},
        )
    )
    if not lexemes:
        return []
    common = await _common_lexemes(session, table)
    numbers = range(len(lexemes))
    terms = [f"CAST(quote_literal(:t{index}) AS tsquery)" for index in numbers]
    rare = [terms[index] for index in numbers if common.get(lexemes[index], 0.0) < COMMON_ROWS]
    values |= {f"t{index}": lexeme for index, lexeme in enumerate(lexemes)}
    # Document frequencies are counted over the agent's matching rows. Where those undercount, the table
    # statistics' estimate stands in: for a word too common to match on, and for every word once the cap on
    # matching rows is reached. Otherwise the count stands alone: an estimate over the whole table would let
    # other agents' rows (and when ANALYZE last ran) change this agent's ranking.
    estimates = [common.get(lexeme, 0.0) for lexeme in lexemes]
    values |= {f"e{index}": estimate for index, estimate in enumerate(estimates)}
    values |= {f"c{index}": estimate if estimate >= COMMON_ROWS else 0.0 for index, estimate in enumerate(estimates)}
    values |= {"k1": BM25_K1, "b": BM25_B[table], "cap": MAX_MATCHING_ROWS}
    has = ", ".join(f"tsv @@ {term} AS h{index}" for index, term in enumerate(terms))
    counts = ", ".join(
        f"greatest(count(*) FILTER (WHERE h{index}), CASE WHEN count(*) >= :cap THEN :e{index} ELSE :c{index} END)"
        f"::float8 AS d{index}"
        for index in numbers
    )
    idf = ", ".join(f"ln(1 + (n - d{index} + 0.5) / (d{index} + 0.5)) AS w{index}" for index in numbers)
    matched = " + ".join(f"h{index}::int * w{index}" for index in numbers)
    # Rows are matched by the rarer words (all words, if every one is common): a word in thousands of rows
    # says little, and matching on it would make the query read those thousands of rows. Its weight in
    # the score then comes from the table statistics' estimate of how many rows hold it.
    match = " || ".join(rare) if rare else " && ".join(terms)
    # Both parts are materialised: the statistics are computed once, not again for every matching row. Rows
    # holding the same words score alike when length counts for nothing (BM25_B 0); the longer one, which
    # says more, goes first.
    statement = text(
        f"WITH matching AS MATERIALIZED (SELECT id, length(tsv) AS size, {has} FROM {table} "
        f"WHERE agent_id = :agent AND owner_id = :owner AND tsv @@ ({match}){filters} LIMIT :cap), "
        f"stats AS MATERIALIZED (SELECT {idf}, mean_size FROM (SELECT {counts}, "
        f"greatest(avg(size), 1)::float8 AS mean_size, ({ROW_COUNTS[table]})::float8 AS n FROM matching) c) "
        f"SELECT id, ({matched}) * (1 + :k1) / (1 + :k1 * (1 - :b + :b * size / mean_size)) "
        f"/ ({' + '.join(f'w{index}' for index in numbers)}) AS score "
        "FROM matching, stats ORDER BY score DESC, size DESC, id LIMIT :limit"
    )
    return [(row.id, float(row.score)) for row in await session.execute(statement, values)]


async def _common_lexemes(session: AsyncSession, table: Table) -> dict[str, float]:
    """Lexemes PostgreSQL's statistics (ANALYZE, run by autovacuum) list as common in `table`'s tsv, with
    the estimated number of rows holding each. Cached for STATISTICS_TTL seconds per database."""
    statistics = cache_of(session).statistics
    cached = statistics.get(table)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    row = (
        await session.execute(
            text(
                "SELECT CAST(CAST(s.most_common_elems AS text) AS text[]) AS lexemes, "
                "s.most_common_elem_freqs AS freqs, c.reltuples FROM pg_stats s "
                "JOIN pg_class c ON c.oid = to_regclass(quote_ident(s.schemaname) || '.' || quote_ident(s.tablename)) "
                "WHERE s.schemaname = current_schema() AND s.tablename = :table AND s.attname = 'tsv'"
            ),
            {"table": table},
        )
    ).first()
    common: dict[str, float] = {}
    if row is not None and row.lexemes:
        common = {lexeme: freq * max(row.reltuples, 0.0) for lexeme, freq in zip(row.lexemes, row.freqs, strict=False)}
    statistics[table] = (time.monotonic() + STATISTICS_TTL, common)
    return common


async def _is_large(
    session: AsyncSession, table: Table, agent_id: uuid.UUID, model: str, limit: int, *, written: int = 0
) -> bool:
    """Whether the agent has more than `limit` rows of this model in `table` (then the index pays off).

    The probe counts at most limit + 1 rows; a "large" answer is remembered for LARGE_AGENT_TTL seconds, a
    "small" one for SMALL_AGENT_TTL seconds, with the rows counted: a search takes it as it is, a write of
    `written` rows while the rows counted and written stay within the limit.
    Results never depend on it: the index path falls back to an exact scan when it finds too few rows.
    """
    table = _checked(table)
    cache = cache_of(session)
    key = (table, agent_id, model, limit)
    now = time.monotonic()
    if cache.large_agents.get(key, 0.0) > now:
        return True
    until, rows = cache.small_agents.get(key, (0.0, 0))
    if until > now and rows + written <= limit:
        if written:
            cache.small_agents[key] = (until, rows + written)
        return False
    probe = text(
        f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE agent_id = :agent AND embedding_model = :model "
        "LIMIT :limit) enough"
    )
    found = await session.scalar(probe, {"agent": agent_id, "model": model, "limit": limit + 1})
    if int(found or 0) > limit:
        cache.large_agents[key] = time.monotonic() + LARGE_AGENT_TTL
        cache.small_agents.pop(key, None)
        return True
    cache.small_agents[key] = (time.monotonic() + SMALL_AGENT_TTL, int(found or 0))
    return False


async def index_when_large(
    session: AsyncSession,
    table: Table,
    agent_ids: Iterable[uuid.UUID],
    *,
    model: str,
    dimension: int,
    exact_scan_limit: int,
) -> None:
    """Create `table`'s HNSW index for this dimension once one of these agents outgrows exact scans.
    `agent_ids` names the agent of each row just written (an agent named once for many rows only makes the
    check come later, within SMALL_AGENT_TTL seconds).

    Until then every search scans its agent exactly, and writes skip the cost of growing a graph (which
    with this index's parameters halves insert speed); the index is then built in one go from the rows
    already there, which also gives a better graph than growing it row by row.
    """
    for agent_id, written in Counter(agent_ids).items():
        if await _is_large(session, table, agent_id, model, exact_scan_limit, written=written):
            await ensure_vector_index(session, table, dimension)
            return


async def ensure_vector_index(session: AsyncSession, table: Table, dimension: int) -> None:
    """Create `table`'s HNSW index for vectors of this dimension if the database lacks it (safe across
    processes). Known indexes are remembered in the database's SearchCache, so writes do not touch the
    catalog (or the table lock that CREATE INDEX takes) again.
    """
    table = _checked(table)
    indexed = cache_of(session).indexed
    key = (table, dimension)
    if key in indexed:
        return
    connection = await session.connection()
    name = f"ix_{table}_embedding_{dimension}"
    exists = "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :name"
    if not (await connection.execute(text(exists), {"name": name})).first():
        await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
        await connection.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                f"USING hnsw ((embedding::vector({dimension})) vector_cosine_ops) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
                f"WHERE vector_dims(embedding) = {dimension}"
            )
        )
    indexed.add(key)


async def set_embeddings(
    session: AsyncSession, table: Table, rows: Sequence[tuple[uuid.UUID, Any]], model: str
) -> None:
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
    return ranked({key: score / best if best else 0.0 for key, score in scores.items()})


def blend(legs: Sequence[tuple[Sequence[tuple[K, float]], float]]) -> dict[K, float]:
    """Weighted sum of the legs' own scores (each about 0 to 1: cosine similarity, normalised BM25).

    Unlike rank fusion, a leg that only found weak matches adds little: on conversation turns this beat
    both legs where rank fusion fell between them (bench/recall_quality.py).
    """
    scores: dict[K, float] = {}
    for scored, weight in legs:
        for key, score in scored:
            scores[key] = scores.get(key, 0.0) + weight * score
    return scores


def rescaled(
    scored: Sequence[tuple[K, float]], *, floor: float | None = None, min_span: float = 0.0
) -> list[tuple[K, float]]:
    """A leg's scores mapped so that its best is 1 and `floor` 0. By default the floor is its worst listed,
    so that a leg whose scores sit close together, as one query's cosine similarities do, still spreads its
    candidates apart; but at least `min_span` below the best, so that a few near-equal candidates (a small
    agent's) are not spread from 0 to 1 on a difference that means nothing."""
    if not scored:
        return []
    best = max(score for _, score in scored)
    low = min(min(score for _, score in scored), best - min_span) if floor is None else floor
    span = best - low
    return [(key, (score - low) / span if span > 0 else 1.0) for key, score in scored]


def ranked(scores: dict[K, float]) -> list[tuple[K, float]]:
    """Best first, ties broken by the id's text so that the order (and so pagination) is stable."""
    return [
        (key, round(score, 4))
        for key, score in sorted(scores.items(), key=lambda item: (-item[1], _text_order(item[0])))
    ]


def _text_order(key: Hashable) -> object:
    """What orders keys as their text does: a UUID's number (its text is that number in fixed-width hex, so
    both order alike, and the number costs no formatting: str() of the ids was ~5% of a search's CPU)."""
    return key.int if isinstance(key, uuid.UUID) else str(key)
