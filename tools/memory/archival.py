"""Archival memory: passages an agent stores and finds again by meaning and by keyword (hybrid search)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field

from engram.storage.errors import InvalidInputError, NotFoundError
from engram.tools.arguments import AgentArg, check_tags, check_text, time_range
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.hybrid import MAX_QUERY_CHARS, SearchMode, check_depth, embed_query, run_legs
from engram.tools.repositories import passage_repo, search
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from engram.storage.passages import PassageFilter
    from engram.storage.schema import Passage

MAX_TOP_K = 50
ANSWER_CHARS = 6000  # all result texts of one answer together (~1.5k tokens), so a search never floods the host
VECTOR_WEIGHT = 1.0
KEYWORD_WEIGHT = 1.0


class PassageRef(BaseModel):
    id: str
    created: bool = Field(description="False when identical content was already stored; its id is returned.")


class PassageHit(BaseModel):
    id: str
    content: str
    truncated: bool = Field(description="True when content was cut to fit the answer.")
    tags: list[str]
    source: str | None
    created_at: datetime
    score: float = Field(description="Fused rank score, 1.0 = best possible.")


class SearchPage(BaseModel):
    results: list[PassageHit]
    page: int
    top_k: int
    has_more: bool


class PassageDeleted(BaseModel):
    id: str
    deleted: bool


class RecentPassages(BaseModel):
    agent: str
    total: int
    passages: list[PassageHit]


async def archival_memory_insert(
    scope: Scope,
    content: Annotated[str, Field(description="The text to remember: a fact, note, or excerpt, self-contained.")],
    tags: Annotated[
        list[str] | None, Field(description="Optional topic tags, e.g. ['travel', 'family'], to filter on later.")
    ] = None,
    agent: AgentArg = None,
) -> PassageRef:
    """Store a passage in archival (long-term) memory, to find later with archival_memory_search.

    Use it for details too long or too many for core memory. Storing identical text again returns the
    existing passage's id instead of a duplicate.
    """
    content = check_text("content", content, max_chars=scope.max_input_chars).strip()
    clean_tags = check_tags(tags)
    [vector] = await scope.embedder.embed([content])
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        [(passage_id, created)] = await passage_repo.insert_many(
            session,
            scope.owner_id,
            agent_row.id,
            scope.embedder.model,
            [passage_repo.NewPassage(text=content, embedding=vector, tags=clean_tags)],
        )
        await search.index_when_large(
            session,
            "passages",
            [agent_row.id],
            model=scope.embedder.model,
            dimension=len(vector),
            exact_scan_limit=scope.exact_scan_limit,
        )
    return PassageRef(id=str(passage_id), created=created)


async def archival_memory_search(
    scope: Scope,
    query: Annotated[str, Field(description="What to look for, in natural language or keywords.")],
    tags: Annotated[list[str] | None, Field(description="Only passages with these tags.")] = None,
    tag_match: Annotated[
        Literal["any", "all"], Field(description="'any': at least one of the tags; 'all': every tag.")
    ] = "any",
    start_datetime: Annotated[
        str | None, Field(description="Only passages stored at or after this ISO date/time, e.g. '2025-01-31'.")
    ] = None,
    end_datetime: Annotated[
        str | None, Field(description="Only passages stored at or before this ISO date/time (a date includes the day).")
    ] = None,
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="Results per page.")] = 10,
    page: Annotated[int, Field(ge=1, description="Page of results, from 1.")] = 1,
    agent: AgentArg = None,
) -> SearchPage:
    """Search archival memory by meaning and by exact words (names, numbers, codes), best matches first."""
    query = check_text("query", query, max_chars=MAX_QUERY_CHARS)
    where = passage_filter(tags, tag_match, start_datetime, end_datetime)
    check_depth(page, top_k, size_name="top_k", narrow="the query or the filters")
    found = await find_passages(scope, agent, query, where, mode="hybrid", window=(page - 1) * top_k, size=top_k)
    ranked, passages = found.ranked, found.passages
    window = ranked[(page - 1) * top_k : page * top_k]
    limit = max(100, min(scope.result_chars, ANSWER_CHARS // top_k))
    return SearchPage(
        results=[hit(passages[passage_id], score, limit) for passage_id, score in window],
        page=page,
        top_k=top_k,
        has_more=len(ranked) > page * top_k,
    )


@dataclass(frozen=True)
class Found:
    ranked: list[tuple[uuid.UUID, float]]  # the fused ranking: (id, score), best first
    passages: dict[uuid.UUID, Passage]  # the passages of the window asked for
    found_by: dict[uuid.UUID, list[str]]  # which legs found each ranked passage: 'meaning', 'words'


async def find_passages(
    scope: Scope,
    agent: str | None,
    query: str,
    where: PassageFilter,
    *,
    mode: SearchMode,
    window: int = 0,
    size: int = 10,
) -> Found:
    """The fused ranking from up to CANDIDATES passages per leg, which legs found each, and the passages ranked
    from `window` to `window + size` (only those are read)."""
    vector = await embed_query(scope, query, mode)
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        nearest, matching = await run_legs(
            session,
            scope,
            "passages",
            agent_row.id,
            query=query,
            vector=vector,
            keywords=None if mode == "vector" else "all",
            where=where,
        )
        legs = [
            ([row_id for row_id, _ in scored], weight)
            for scored, weight in ((nearest, VECTOR_WEIGHT), (matching, KEYWORD_WEIGHT))
            if scored is not None
        ]
        ranked = search.fuse(legs)
        passages = await passage_repo.fetch(session, [passage_id for passage_id, _ in ranked[window : window + size]])
    found_by: dict[uuid.UUID, list[str]] = {passage_id: [] for passage_id, _ in ranked}
    for name, scored in (("meaning", nearest), ("words", matching)):
        for row_id, _ in scored or []:
            found_by[row_id].append(name)
    return Found(ranked=ranked, passages=passages, found_by=found_by)


async def archival_memory_delete(
    scope: Scope,
    id: Annotated[str, Field(description="Id of the passage, as returned by archival_memory_insert or _search.")],
    agent: AgentArg = None,
) -> PassageDeleted:
    """Delete a passage from archival memory (for example one that is wrong or outdated)."""
    passage_id = parse_passage_id(id)
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        if not await passage_repo.delete_passage(session, scope.owner_id, agent_row.id, passage_id):
            raise NotFoundError(
                f"agent '{agent_row.name}' has no archival passage '{id}'; archival_memory_search shows passage ids"
            )
    return PassageDeleted(id=id, deleted=True)


async def recent_passages(scope: Scope, agent: str | None, *, limit: int = 20) -> RecentPassages:
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        rows = await passage_repo.recent(session, scope.owner_id, agent_row.id, limit=limit)
        total = await passage_repo.count(session, scope.owner_id, agent_row.id)
    return RecentPassages(
        agent=agent_row.name, total=total, passages=[hit(row, 0.0, scope.result_chars) for row in rows]
    )


def hit(passage: Passage, score: float, limit: int) -> PassageHit:
    truncated = len(passage.text) > limit
    return PassageHit(
        id=str(passage.id),
        content=passage.text[: limit - 1] + "…" if truncated else passage.text,
        truncated=truncated,
        tags=list(passage.tags),
        source=passage.source,
        created_at=passage.created_at,
        score=score,
    )


def passage_filter(tags: list[str] | None, tag_match: str, start: str | None, end: str | None) -> PassageFilter:
    if tag_match not in ("any", "all"):
        raise InvalidInputError(f"tag_match {tag_match!r} is not valid; use 'any' or 'all'")
    start_at, end_at = time_range(("start_datetime", start), ("end_datetime", end))
    return passage_repo.PassageFilter(
        tags=check_tags(tags), match_all_tags=tag_match == "all", start=start_at, end=end_at
    )


def parse_passage_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise InvalidInputError(
            f"{value[:60]!r} is not a passage id; ids look like 'a3f1c2d4-…' (see archival_memory_search)"
        ) from None
