"""Recall memory: every message of an agent's conversations, recorded and found again (hybrid search).

MCP hosts do not show the server their conversations; they record turns with conversation_record (or
the `engram record` hook command, or `engram import`), and find them with conversation_search, whose
answer is budgeted in tokens (ANSWER_TOKENS) like archival_memory_search's: whole messages, best first, as
many as fit, each with its neighbours shortened; `more` and `next` say what is left and where it continues.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from engram.storage.errors import NotFoundError
from engram.tools.arguments import (
    DEFAULT_CONVERSATION,
    AgentArg,
    ConversationArg,
    Role,
    check_conversation,
    check_page,
    check_role,
    check_text,
    time_range,
)
from engram.tools.memory import when
from engram.tools.memory.agents import resolve_agent_ref
from engram.tools.memory.budget import text_tokens, what_is_left, within_budget
from engram.tools.memory.hybrid import (
    MAX_QUERY_CHARS,
    QueryVector,
    SearchMode,
    check_depth,
    embedding_of,
    run_legs,
)
from engram.tools.memory.render import cut
from engram.tools.repositories import message_repo, search
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage.agents import NamedAgent
    from engram.storage.messages import FoundMessage, MessageFilter, Surroundings
    from engram.storage.schema import Conversation
    from engram.storage.search import Scored

MAX_LIMIT = 50
# What one search answer may cost the host, in tokens of its text (the compact JSON a model reads) as
# budget.text_tokens estimates them: ~2,000 as cl100k_base counts them (the estimate runs ~1.3 times the count
# on prose), what its former cap of 8,000 characters of hits and neighbours stood for. A default page of ten
# turns of real dialogue with their neighbours fits whole (at 2,000 only 17% of LoCoMo's questions got ten,
# and recall@10 of the hits shown fell from 0.767 to 0.752); above archival's 1,500, as every hit brings two
# neighbours along.
ANSWER_TOKENS = 2500
# A neighbour is context for its hit, not a hit: a sentence or two (~40 tokens) says what the hit answers or
# what answered it, and the host can search again or read the transcript for more.
NEIGHBOUR_CHARS = 160
# A hit's fields besides its text, neighbours and conversation name (id, role, created_at, truncated, score,
# the keys and the JSON punctuation, the comma after it included): 64 to 77 cl100k_base tokens measured over
# 400 random hits while created_at kept its microseconds (3 tokens more on average), rounded up.
HIT_FIELD_TOKENS = 80
# conversation_search's score, in steps (`ranking`):
# 1. each leg rescaled so that its best candidate is 1: the vector leg's worst candidate is 0 (cosine
#    similarities of one query sit close together), or VECTOR_MIN_SPAN below the best if they are closer
#    (the best 100 of real dialogue span 0.17-0.42 with all-MiniLM-L6-v2), the keyword leg's zero stays 0;
# 2. VECTOR_WEIGHT and KEYWORD_WEIGHT times those: equal, as neither leg is the stronger one everywhere;
# 3. DATE_WEIGHT for a message said on a day (or in a month) the query names ("what did I say on 8 May?");
# 4. CONVERSATION_WEIGHT times the mean of the CONVERSATION_BEST best scores in the message's conversation
#    (missing ones count 0): a conversation about the question's subject holds more of its answer than a
#    stray match elsewhere;
# 5. NEIGHBOUR_WEIGHT times the better score of the messages just before and after (`with_neighbours`): an
#    answer is often next to the turn that matches the question.
# Steps 1 and 3-4 and b = 0 in the keyword leg's BM25 were chosen on real dialogue (bench/locomo_dev.py), each
# kept only when the synthetic set (bench/recall_quality.py) did not lose by it; see the README.
VECTOR_WEIGHT = 0.5
KEYWORD_WEIGHT = 0.5
VECTOR_MIN_SPAN = 0.2
DATE_WEIGHT = 0.25
CONVERSATION_WEIGHT = 0.6
CONVERSATION_BEST = 3
NEIGHBOUR_WEIGHT = 0.3
NEIGHBOUR_DEPTH = 50  # how many of the best matches lend their score to (and bring in) their neighbours
TRANSCRIPT_PAGE = 50


class RecordedMessage(BaseModel):
    id: str
    conversation: str
    ordinal: int = Field(description="Position in the conversation, from 1.")


class MessageHit(BaseModel):
    id: str
    conversation: str
    role: str
    created_at: datetime
    text: str = Field(description="The message, or the part of it around the words searched for.")
    truncated: bool = Field(description="True when text is only part of the message.")
    before: str | None = Field(description="The message just before ('role: text'), shortened.")
    after: str | None = Field(description="The message just after ('role: text'), shortened.")
    score: float = Field(description="Relevance: higher is better (1 or more for a close match).")


class NextMessagePage(BaseModel):
    """The arguments that continue a search right after its last hit shown."""

    page: int
    limit: int


class MessageSearchPage(BaseModel):
    results: list[MessageHit]
    page: int
    limit: int
    more: int = Field(description="Matches ranked after the last hit shown.")
    next: NextMessagePage | None = Field(
        description="page and limit that continue right after the last hit shown; None when nothing more is "
        "within reach (the 100 best matches): narrow the query, the dates or the conversation instead."
    )


class ConversationInfo(BaseModel):
    name: str
    title: str
    source: str
    messages: int
    created_at: datetime
    last_message_at: datetime | None


class ConversationList(BaseModel):
    agent: str
    total: int
    conversations: list[ConversationInfo]


class ConversationDeleted(BaseModel):
    agent: str
    conversation: str
    messages_deleted: int
    summaries_deleted: int = Field(description="The built-in agent's summaries of the conversation, removed with it.")


class TranscriptMessage(BaseModel):
    ordinal: int
    role: str
    created_at: datetime
    text: str


class Transcript(BaseModel):
    agent: str
    conversation: ConversationInfo
    page: int
    messages: list[TranscriptMessage]
    next_page: int | None


async def conversation_record(
    scope: Scope,
    role: Annotated[Role, Field(description="Who said it: 'user', 'assistant', 'tool' or 'system'.")],
    content: Annotated[str, Field(description="The message text, as said.")],
    conversation: ConversationArg = None,
    agent: AgentArg = None,
) -> RecordedMessage:
    """Record one message of the current conversation in recall memory, so conversation_search finds it later.

    Record the user's messages and your replies as they happen (not summaries): recall memory is the
    verbatim history. The conversation is created on first use.
    """
    return await record_message(scope, agent, conversation, role, content, source="mcp")


async def record_message(
    scope: Scope,
    agent: str | None,
    conversation: str | None,
    role: str,
    content: str,
    *,
    source: str,
    create_agent: bool = False,
) -> RecordedMessage:
    """Append one message to a conversation (created on first use, noting `source`: mcp, cli, a hook)."""
    name = check_conversation(DEFAULT_CONVERSATION if conversation is None else conversation)
    text_value = check_text("content", content, max_chars=scope.max_input_chars)
    checked_role = check_role(role)
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent, create=create_agent)
        stored = await message_repo.record_one(
            session,
            scope.owner_id,
            agent_row.id,
            name,
            message_repo.NewMessage(role=checked_role, text=text_value, content={"text": text_value}),
            source=source,
        )
    scope.recorded()
    return RecordedMessage(id=str(stored.id), conversation=name, ordinal=stored.ordinal)


async def conversation_search(
    scope: Scope,
    query: Annotated[str, Field(description="What to look for: words, names, numbers, or a description.")],
    roles: Annotated[
        list[Role] | None,
        Field(
            description="Only messages of these roles; default user, assistant and system (tool results only "
            "when asked for)."
        ),
    ] = None,
    start_date: Annotated[
        str | None, Field(description="Only messages from this ISO date/time on, e.g. '2025-01-31' (inclusive).")
    ] = None,
    end_date: Annotated[
        str | None, Field(description="Only messages up to this ISO date/time (a date includes the whole day).")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Results per page.")] = 10,
    page: Annotated[int, Field(ge=1, description="Page of results, from 1.")] = 1,
    conversation: Annotated[str | None, Field(description="Only this conversation (all if omitted).")] = None,
    agent: AgentArg = None,
) -> MessageSearchPage:
    """Search past conversations (recall memory) by meaning and by exact words, best matches first.

    Returns whole messages within about 2,000 tokens, each with its role, date, conversation and the messages
    around it (shortened); `more` counts further matches, `next` gives the page and limit that continue.
    """
    query = check_text("query", query, max_chars=MAX_QUERY_CHARS)
    check_depth(page, limit, size_name="limit", narrow="the query, the dates or the conversation")
    start_at, end_at = time_range(("start_date", start_date), ("end_date", end_date))
    wanted_roles = [check_role(role) for role in roles] if roles else ["user", "assistant", "system"]
    # The query is embedded (in a worker thread) while the agent, the conversation and the keyword leg are read.
    async with embedding_of(scope, query, "hybrid") as vector, scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        conversation_id = (
            (await find_conversation(session, scope, agent_row, conversation)).id if conversation is not None else None
        )
        where = message_repo.MessageFilter(
            roles=wanted_roles,
            include_search_calls="tool" in wanted_roles,
            conversation_id=conversation_id,
            start=start_at,
            end=end_at,
        )
        ranked, hits = await ranked_hits(
            session, scope, agent_row, query, where, vector=vector, window=(page - 1) * limit, size=limit
        )
    more, following = what_is_left(len(ranked), page, limit, len(hits), MAX_LIMIT)
    return MessageSearchPage(
        results=hits,
        page=page,
        limit=limit,
        more=more,
        next=NextMessagePage(page=following[0], limit=following[1]) if following else None,
    )


async def search_messages(
    scope: Scope,
    agent_row: NamedAgent,
    query: str,
    where: MessageFilter,
    *,
    mode: SearchMode,
    window: int = 0,
    size: int = 10,
) -> tuple[list[tuple[uuid.UUID, float]], list[MessageHit]]:
    """The fused ranking (id, score) from up to CANDIDATES messages per leg, and the hits ranked from
    `window` on, at most `size` of them, with their neighbouring messages, as many as fit ANSWER_TOKENS."""
    async with embedding_of(scope, query, mode) as vector, scope.sessions.begin() as session:
        return await ranked_hits(
            session,
            scope,
            agent_row,
            query,
            where,
            vector=vector,
            keywords=mode != "vector",
            window=window,
            size=size,
        )


async def ranked_hits(
    session: AsyncSession,
    scope: Scope,
    agent_row: NamedAgent,
    query: str,
    where: MessageFilter,
    *,
    vector: QueryVector | None,
    keywords: bool = True,
    window: int,
    size: int,
) -> tuple[list[tuple[uuid.UUID, float]], list[MessageHit]]:
    """`search_messages` in the caller's transaction, with the query's vector being computed (None: no
    vector leg)."""
    nearest, matching = await run_legs(
        session,
        scope,
        "messages",
        agent_row.id,
        query=query,
        vector=vector,
        keywords="any" if keywords else None,
        where=where,
    )
    scores = await ranking(session, scope, agent_row, query, where, nearest, matching)
    ranked = search.ranked(scores)
    chosen = ranked[window : window + size]
    found, around = await message_repo.found_around(session, [message_id for message_id, _ in chosen])
    hits = within_budget(
        [(found[message_id], score) for message_id, score in chosen],
        ANSWER_TOKENS,
        lambda scored, chars: render_hit(*scored, around, query, chars),
        hit_tokens,
        scope.result_chars,
    )
    return ranked, hits


async def ranking(
    session: AsyncSession,
    scope: Scope,
    agent_row: NamedAgent,
    query: str,
    where: MessageFilter,
    nearest: Scored | None,
    matching: Scored | None,
) -> dict[uuid.UUID, float]:
    """conversation_search's scores of the legs' candidates (and of their neighbours, when both legs ran):
    see the steps above VECTOR_WEIGHT. A single leg is ranked by its own scores."""
    legs = [
        (rescaled, weight)
        for rescaled, weight in (
            (nearest and search.rescaled(nearest, min_span=VECTOR_MIN_SPAN), VECTOR_WEIGHT),
            (matching and search.rescaled(matching, floor=0.0), KEYWORD_WEIGHT),
        )
        if rescaled is not None
    ]
    scores = search.blend(legs)
    if len(legs) < 2 or not scores:
        return scores
    placed = await message_repo.surroundings(session, scope.owner_id, agent_row.id, list(scores), where)
    placement = placed[0]
    scores = {message_id: score for message_id, score in scores.items() if message_id in placement}  # none deleted
    spans = when.named_spans(query)
    if spans:
        scores = {
            message_id: score + DATE_WEIGHT * when.within(placement[message_id].created_at, spans)
            for message_id, score in scores.items()
        }
    in_conversation: dict[uuid.UUID, list[float]] = {}
    for message_id, score in scores.items():
        in_conversation.setdefault(placement[message_id].conversation_id, []).append(score)
    bonus = {
        conversation: CONVERSATION_WEIGHT * sum(sorted(found, reverse=True)[:CONVERSATION_BEST]) / CONVERSATION_BEST
        for conversation, found in in_conversation.items()
    }
    scores = {message_id: score + bonus[placement[message_id].conversation_id] for message_id, score in scores.items()}
    return with_neighbours(scores, placed)


def with_neighbours(scores: dict[uuid.UUID, float], placed: Surroundings) -> dict[uuid.UUID, float]:
    """Each message's score plus NEIGHBOUR_WEIGHT times the better of its neighbours' scores; neighbours
    of the NEIGHBOUR_DEPTH best matches (passing the filter) join the candidates. `placed` holds the scored
    messages' places and their neighbours (`message_repo.surroundings`)."""
    best = sorted(scores, key=lambda message_id: -scores[message_id])[:NEIGHBOUR_DEPTH]
    places, nearby = placed
    found = {
        (places[message_id].conversation_id, places[message_id].ordinal): message_id
        for message_id in best
        if message_id in places
    }
    wanted = {(conversation, ordinal + step) for conversation, ordinal in found for step in (-1, 1)} - set(found)
    found |= {position: nearby[position] for position in wanted if position in nearby}

    def score_at(position: tuple[uuid.UUID, int]) -> float:
        message_id = found.get(position)
        return scores.get(message_id, 0.0) if message_id is not None else 0.0

    return scores | {
        message_id: scores.get(message_id, 0.0)
        + NEIGHBOUR_WEIGHT * max(score_at((conversation, ordinal - 1)), score_at((conversation, ordinal + 1)))
        for (conversation, ordinal), message_id in found.items()
    }


def render_hit(
    row: FoundMessage,
    score: float,
    around: dict[tuple[uuid.UUID, int], FoundMessage],
    query: str,
    chars: int,
) -> MessageHit:
    """A hit with its text cut to `chars` characters (around the words searched for) and its neighbours to
    NEIGHBOUR_CHARS."""
    text_value, truncated = snippet(row.text, query, chars)

    def neighbour(step: int) -> str | None:
        other = around.get((row.conversation_id, row.ordinal + step))
        return None if other is None else shorten(f"{other.role}: {other.text}", NEIGHBOUR_CHARS)

    return MessageHit(
        id=str(row.id),
        conversation=row.conversation,
        role=row.role,
        created_at=row.created_at.replace(microsecond=0),  # as archival hits: the second is enough to place it
        text=text_value,
        truncated=truncated,
        before=neighbour(-1),
        after=neighbour(1),
        score=score,
    )


def hit_tokens(found: MessageHit) -> int:
    """About how many tokens a hit costs in the answer's text: its text, neighbours, conversation's name and
    fields."""
    parts = (found.text, found.before or "", found.after or "", found.conversation)
    return sum(text_tokens(part) for part in parts) + HIT_FIELD_TOKENS


WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'_-]{2,}")


def snippet(text_value: str, query: str, limit: int) -> tuple[str, bool]:
    """The text if it fits in `limit` characters, else the part around the first word of the query it contains."""
    if len(text_value) <= limit:
        return text_value, False
    lowered = text_value.lower()
    positions = [lowered.find(word.lower()) for word in WORD.findall(query)]
    first = min((position for position in positions if position >= 0), default=0)
    width = limit - 2  # room for an ellipsis at either end
    start = max(0, min(first - limit // 4, len(text_value) - width))
    end = start + width
    return ("…" if start else "") + text_value[start:end].strip() + ("…" if end < len(text_value) else ""), True


def shorten(text_value: str, limit: int) -> str:
    return cut(" ".join(text_value.split()), limit)


async def list_conversations(scope: Scope, agent: str | None, *, limit: int = 100, offset: int = 0) -> ConversationList:
    """The agent's conversations, most recently active first: `limit` of them from `offset` on, and the total."""
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        rows, total = await message_repo.list_conversations(
            session, scope.owner_id, agent_row.id, limit=limit, offset=offset
        )
    return ConversationList(agent=agent_row.name, total=total, conversations=[conversation_info(row) for row in rows])


async def conversation_delete(
    scope: Scope,
    conversation: Annotated[str, Field(description="Name of the conversation to delete, with all of its messages.")],
    agent: AgentArg = None,
) -> ConversationDeleted:
    """Delete a conversation from recall memory: its messages, and the built-in agent's summaries of it.

    This cannot be undone. Other conversations, core memory and archival memory are not touched.
    """
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        thread = await find_conversation(session, scope, agent_row, conversation)
        deleted = await message_repo.delete_conversation(session, thread)
        if deleted is None:  # deleted meanwhile by another call
            raise missing_conversation(agent_row, conversation)
    messages, summaries = deleted
    return ConversationDeleted(
        agent=agent_row.name, conversation=thread.name, messages_deleted=messages, summaries_deleted=summaries
    )


async def read_transcript(scope: Scope, agent: str | None, conversation: str, page: int = 1) -> Transcript:
    check_page(page)
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent_ref(session, scope, agent)
        thread = await find_conversation(session, scope, agent_row, conversation)
        rows = await message_repo.transcript(
            session, thread, first=(page - 1) * TRANSCRIPT_PAGE + 1, limit=TRANSCRIPT_PAGE
        )
    return Transcript(
        agent=agent_row.name,
        conversation=conversation_info(thread),
        page=page,
        messages=[
            TranscriptMessage(ordinal=row.ordinal, role=row.role, created_at=row.created_at, text=row.text)
            for row in rows
        ],
        next_page=page + 1 if page * TRANSCRIPT_PAGE < thread.message_count else None,
    )


async def find_conversation(session: AsyncSession, scope: Scope, agent_row: NamedAgent, name: str) -> Conversation:
    found = await message_repo.get_conversation(session, scope.owner_id, agent_row.id, check_conversation(name))
    if found is None:
        raise missing_conversation(agent_row, name)
    return found


def missing_conversation(agent_row: NamedAgent, name: str) -> NotFoundError:
    return NotFoundError(
        f"agent '{agent_row.name}' has no conversation '{name}'; "
        f"engram://agents/{agent_row.name}/conversations lists them"
    )


def conversation_info(row: Conversation) -> ConversationInfo:
    return ConversationInfo(
        name=row.name,
        title=row.title,
        source=row.source,
        messages=row.message_count,
        created_at=row.created_at,
        last_message_at=row.last_message_at,
    )
