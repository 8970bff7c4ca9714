"""Archival memory: passages an agent stores and finds again by meaning and by keyword (hybrid search).

A search answers within a token budget (ANSWER_TOKENS): whole passages, best first, as many as fit, rather
than every hit of the page cut to a stub; the answer says how many more matches there are and which page
holds the next one. Each hit's score is a relevance people can read (`relevance`), not the rank fusion's
arithmetic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field

from engram.storage.errors import InvalidInputError, NotFoundError
from engram.tools.arguments import MAX_TAG_CHARS, MAX_TAGS, AgentArg, check_tags, check_text, time_range
from engram.tools.memory.agents import resolve_agent_ref
from engram.tools.memory.budget import text_tokens, what_is_left, within_budget
from engram.tools.memory.hybrid import MAX_QUERY_CHARS, SearchMode, check_depth, embedding_of, run_legs
from engram.tools.repositories import passage_repo, search
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from engram.storage.passages import PassageFilter
    from engram.storage.schema import Passage

MAX_TOP_K = 50
# What one search answer may cost the host, in tokens of its text (the compact JSON a model reads); the
# same as memory_context's default budget for a message.
ANSWER_TOKENS = 1500
# A hit's fields besides its text and tags (id, created_at, score, truncated, source's key and the JSON
# punctuation): 64 cl100k_base tokens measured, rounded up. The page's own fields take ANSWER_FIELD_TOKENS.
HIT_FIELD_TOKENS = 72
VECTOR_WEIGHT = 1.0
KEYWORD_WEIGHT = 1.0


class PassageRef(BaseModel):
    id: str
    created: bool = Field(description="False when identical content was already stored; its id is returned.")


class StoredPassage(BaseModel):
    id: str
    content: str
    truncated: bool = Field(description="True when content was cut (longer than the server shows of one passage).")
    tags: list[str]
    source: str | None
    created_at: datetime


class PassageHit(StoredPassage):
    score: float = Field(
        description="Relevance from 0 to 1: 1 when the passage holds every word of the query, else how close "
        "its meaning is (cosine similarity: 1 = the same, about 0.4 or less = unrelated)."
    )


class NextPage(BaseModel):
    """The arguments that continue a search right after its last hit shown."""

    page: int
    top_k: int


class SearchPage(BaseModel):
    results: list[PassageHit]
    page: int
    top_k: int
    more: int = Field(description="Matches ranked after the last hit shown.")
    next: NextPage | None = Field(
        description="page and top_k that continue right after the last hit shown; None when nothing more is "
        "within reach (the 100 best matches): narrow the query or the filters instead."
    )


class PassageDeleted(BaseModel):
    id: str
    deleted: bool


class RecentPassages(BaseModel):
    agent: str
    total: int
    passages: list[StoredPassage]


async def archival_memory_insert(
    scope: Scope,
    content: Annotated[str, Field(description="The text to remember: a fact, note or excerpt, self-contained.")],
    tags: Annotated[
        list[str] | None,
        Field(description=f"Tags to filter on later, e.g. ['travel'] (up to {MAX_TAGS}, {MAX_TAG_CHARS} chars each)."),
    ] = None,
    agent: AgentArg = None,
) -> PassageRef:
    """Store a passage in archival (long-term) memory, for details too long or too many for core memory.

    Returns its id; identical text already stored returns the existing id (created: false).
    """
    content = check_text("content", content, max_chars=scope.max_input_chars).strip()
    clean_tags = check_tags(tags)
    [vector] = await scope.embedder.embed([content])
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
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
    query: Annotated[str, Field(description="What to look for: a question, words, names, numbers or codes.")],
    tags: Annotated[list[str] | None, Field(description=f"Only passages with these tags (up to {MAX_TAGS}).")] = None,
    tag_match: Annotated[
        Literal["any", "all"], Field(description="'any': at least one of the tags; 'all': every tag.")
    ] = "any",
    start_datetime: Annotated[
        str | None, Field(description="Only passages stored at or after this ISO date/time, e.g. '2025-01-31'.")
    ] = None,
    end_datetime: Annotated[
        str | None, Field(description="Only passages stored at or before this ISO date/time (a date: all that day).")
    ] = None,
    top_k: Annotated[
        int, Field(ge=1, le=MAX_TOP_K, description="Most hits to return (fewer when they would not fit the answer).")
    ] = 10,
    page: Annotated[int, Field(ge=1, description="Page of top_k hits, from 1.")] = 1,
    agent: AgentArg = None,
) -> SearchPage:
    """Search archival memory by meaning and by exact words (names, numbers, codes), best matches first.

    Returns whole passages within about 1,500 tokens, each with a score from 0 to 1 (1: holds every word of
    the query, or means the same); `more` counts further matches and `next` gives the page and top_k that
    continue. Query: at most 2,000 characters.
    """
    query = check_text("query", query, max_chars=MAX_QUERY_CHARS)
    where = passage_filter(tags, tag_match, start_datetime, end_datetime)
    check_depth(page, top_k, size_name="top_k", narrow="the query or the filters")
    start = (page - 1) * top_k
    found = await find_passages(scope, agent, query, where, mode="hybrid", window=start, size=top_k)
    window = [found.passages[passage_id] for passage_id, _ in found.ranked[start : start + top_k]]
    results = within_budget(
        [(passage, found.relevance(passage.id)) for passage in window],
        ANSWER_TOKENS,
        lambda scored, chars: hit(*scored, chars),
        hit_tokens,
        scope.result_chars,
    )
    more, following = what_is_left(len(found.ranked), page, top_k, len(results), MAX_TOP_K)
    return SearchPage(
        results=results,
        page=page,
        top_k=top_k,
        more=more,
        next=NextPage(page=following[0], top_k=following[1]) if following else None,
    )


def hit_tokens(found: PassageHit) -> int:
    """About how many tokens a hit costs in the answer's text: its content, tags and source, and its fields."""
    tags = sum(text_tokens(tag) + 2 for tag in found.tags)
    source = text_tokens(found.source) + 4 if found.source else 0
    return text_tokens(found.content) + tags + source + HIT_FIELD_TOKENS


@dataclass(frozen=True)
class Found:
    ranked: list[tuple[uuid.UUID, float]]  # the fused ranking: (id, score), best first
    passages: dict[uuid.UUID, Passage]  # the passages of the window asked for
    found_by: dict[uuid.UUID, list[str]]  # which legs found each ranked passage: 'meaning', 'words'
    similarity: dict[uuid.UUID, float] = field(default_factory=dict)  # cosine, for those the vector leg found

    def relevance(self, passage_id: uuid.UUID) -> float:
        """A score from 0 to 1 that means the same in every search: 1 for a passage that holds every word of
        the query (the keyword leg matched it), else its closeness in meaning (cosine similarity: 1 = the same
        meaning; the default model puts unrelated text at about 0.4 or less). The fused score cannot be read
        this way: it only says where a passage ranked in each leg, so a perfect match found by one leg
        scored 0.5.

        A passage found only by its words, past the vector leg's depth, has no similarity here; holding
        every word, it scores 1 anyway."""
        if "words" in self.found_by.get(passage_id, []):
            return 1.0
        return round(min(1.0, max(0.0, self.similarity.get(passage_id, 0.0))), 2)


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
    # The query is embedded (in a worker thread) while the agent and the keyword leg are read.
    async with embedding_of(scope, query, mode) as vector, scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
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
    return Found(ranked=ranked, passages=passages, found_by=found_by, similarity=dict(nearest or []))


async def archival_memory_delete(
    scope: Scope,
    id: Annotated[str, Field(description="Id of the passage, as returned by archival_memory_insert or _search.")],
    agent: AgentArg = None,
) -> PassageDeleted:
    """Delete a passage from archival memory (for example one that is wrong or outdated)."""
    passage_id = parse_passage_id(id)
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        if not await passage_repo.delete_passage(session, scope.owner_id, agent_row.id, passage_id):
            raise NotFoundError(
                f"agent '{agent_row.name}' has no archival passage '{id}'; archival_memory_search shows passage ids"
            )
    return PassageDeleted(id=id, deleted=True)


async def recent_passages(scope: Scope, agent: str | None, *, limit: int = 20) -> RecentPassages:
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        rows = await passage_repo.recent(session, scope.owner_id, agent_row.id, limit=limit)
        total = await passage_repo.count(session, scope.owner_id, agent_row.id)
    return RecentPassages(agent=agent_row.name, total=total, passages=[stored(row, scope.result_chars) for row in rows])


def stored(passage: Passage, limit: int) -> StoredPassage:
    """The passage with its text cut to `limit` characters."""
    truncated = len(passage.text) > limit
    return StoredPassage(
        id=str(passage.id),
        content=passage.text[: limit - 1] + "…" if truncated else passage.text,
        truncated=truncated,
        tags=list(passage.tags),
        source=passage.source,
        created_at=passage.created_at.replace(microsecond=0),
    )


def hit(passage: Passage, score: float, limit: int) -> PassageHit:
    return PassageHit(**dict(stored(passage, limit)), score=score)


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
