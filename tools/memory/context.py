"""What the model should know now: the one retrieval behind the memory_context tool, its prompt, the REST
route and the Claude Code hooks.

For a message, within a token budget: the agent's core memory (always), the current conversation's summary
when the built-in agent has one, then the archival passages and recorded messages that bear on the message,
ranked together by recall's blend (half the cosine similarity, half the normalised BM25 of any of the
message's words; a message also gains from its neighbours'), each recalled message with the messages just
before and after it. An empty message is a session's start: core memory and recent activity instead.

What is recalled must mean something close to the message, a cosine similarity of at least RELEVANCE_FLOOR
(sharing words is not enough: "thanks!" shares its one word with dozens of turns), or hold one of its exact
identifiers (a ticket number, an error code, a file or function name), which embeddings blur. A message of
fewer than MIN_CONTENT_WORDS words ("ok", "continue") recalls nothing, and a past message that repeats the
prompt ("yes, go ahead" typed in an earlier session) is an echo, not a memory.

A host session (`session`, e.g. Claude Code's session id) is never given the same item twice (what it was
given is kept in the database: each hook is a new process), and the messages of its own conversation are
never fed back to it as memory.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal
from xml.sax.saxutils import quoteattr

from pydantic import BaseModel, Field

from engram.storage import lazy_module
from engram.storage.errors import InvalidInputError
from engram.tools.arguments import check_conversation, check_text
from engram.tools.memory.agents import resolve_agent_ref
from engram.tools.memory.hybrid import MAX_QUERY_CHARS, QueryVector, embedding_of, run_legs
from engram.tools.memory.recall import KEYWORD_WEIGHT, VECTOR_WEIGHT, shorten, snippet, with_neighbours
from engram.tools.memory.render import cut
from engram.tools.repositories import block_repo, message_repo, passage_repo, search, summary_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage import context as context_repo
    from engram.storage.agents import NamedAgent
    from engram.storage.messages import FoundMessage
    from engram.storage.schema import Block, Conversation, Passage
else:
    context_repo = lazy_module("engram.storage.context")

# Measured with `python -m bench.context --floor` (locomo-dev and the archival quality set, against prompts
# about nothing their agents hold): the unrelated prompts' best matches reached 0.399 (p99 0.368), while the
# evidence of 84% of the questions scored 0.40 or more, 81% 0.42 or more; 0.42 keeps a margin.
RELEVANCE_FLOOR = 0.42
MIN_CONTENT_WORDS = 2  # stemmed words that are not stop words: "thanks!", "ok" and "continue" have one
ECHO_SIMILARITY = 0.9  # a past message this close to the prompt repeats it
# Budgets are in tokens; text is measured in characters. cl100k_base counted 4.2 characters a token on the
# contexts of locomo-dev and 3.9 on the archival set's (bench/context.py); 3.8 keeps the count under the budget.
CHARS_PER_TOKEN = 3.8
MIN_TOKENS = 200
MAX_SESSION_CHARS = 200
MAX_TOKENS = 8000
CANDIDATES = 24  # recalled items considered, best first, before the budget decides
HIT_CHARS = 700  # a recalled message or passage: the part around the message's words
NEIGHBOUR_CHARS = 240  # the messages just before and after a recalled one
CORE_SHARE = 0.6  # of the room kept for core memory (it takes more when the rest leaves more)
SUMMARY_SHARE = 0.4  # of what core memory leaves
RECENT_CONVERSATIONS = 5
RECENT_MESSAGES = 2  # the last messages of each recent conversation shown at a session's start
RECENT_PASSAGES = 5
RECENT_CHARS = 300
MIN_BLOCK_CHARS = 40  # a core block cut to fit keeps at least this much
MIN_SUMMARY_CHARS = 200  # a summary that would have to be cut shorter is left out
FORGET_AFTER = timedelta(days=30)  # what a session was given is kept this long (forgotten as sessions start)

Kind = Literal["core", "summary", "passage", "conversation"]


@dataclass(frozen=True)
class ContextBudget:
    """Default budgets in tokens (the context_prompt_tokens and context_session_tokens settings)."""

    prompt_tokens: int = 1500
    session_tokens: int = 2500


class ContextItem(BaseModel):
    kind: Kind = Field(description="'core' memory, the conversation's 'summary', a 'passage' or a 'conversation' part.")
    source: str = Field(description="Where it comes from: a block's label, a conversation's name, a passage's file.")
    date: datetime | None = Field(description="When it was said or stored (for a block: last edited).")
    text: str = Field(description="As shown in `text`, shortened to fit.")
    score: float | None = Field(description="How well it matches the message (recalled items only; higher is better).")
    ids: list[str] = Field(description="What it shows: 'block:<id>:<version>', 'passage:<id>', 'message:<id>', ….")


class MemoryContext(BaseModel):
    agent: str
    text: str = Field(description="The context to give the model: empty when there is nothing new to give.")
    tokens: int = Field(description="Estimated tokens of `text` (about 3.8 characters a token).")
    budget: int = Field(description="The budget in tokens it was built for.")
    items: list[ContextItem]
    recalled: int = Field(description="How many passages and conversation parts were recalled for the message.")


@dataclass
class Piece:
    """One item being fitted into the budget, with the ids it shows."""

    kind: Kind
    source: str
    date: datetime | None
    body: str
    ids: list[str]
    score: float | None = None  # recall's blend, by which recalled items are ranked
    similarity: float | None = None  # cosine similarity to the message, which the relevance floor applies to
    attributes: dict[str, str] = field(default_factory=dict)
    hit: str = ""  # the recalled message of a conversation part (its neighbours come with it)

    @property
    def size(self) -> int:
        """Characters it takes in the context, its line break included."""
        return len(self.render()) + 1

    def render(self) -> str:
        tag = {"core": "block", "summary": "summary", "passage": "archival", "conversation": "conversation"}[self.kind]
        attributes = "".join(f" {name}={quoteattr(value)}" for name, value in self.attributes.items() if value)
        return f"<{tag}{attributes}>\n{self.body}\n</{tag}>"

    def item(self) -> ContextItem:
        return ContextItem(
            kind=self.kind,
            source=self.source,
            date=self.date,
            text=self.body,
            score=None if self.score is None else round(self.score, 3),
            ids=self.ids,
        )


async def memory_context(
    scope: Scope,
    message: str = "",
    agent: str | None = None,
    max_tokens: int | None = None,
    *,
    session: str | None = None,
    conversation: str | None = None,
    budget: ContextBudget | None = None,
    max_chars: int | None = None,
    create_agent: bool = False,
) -> MemoryContext:
    """What the model should know for `message` (empty: at a session's start), within `max_tokens`
    (default: the budget's prompt or session tokens) and `max_chars`.

    `session` names the host session asking: what it was given already is left out, and what it is given now
    is remembered. `conversation` is the session's own conversation in recall memory: its summary is given
    (when the built-in agent has one) and its messages are never recalled. `create_agent` makes a missing
    named agent (a hook's first event).
    """
    query = check_text("message", message, max_chars=scope.max_input_chars, allow_empty=True).strip()
    query = query[:MAX_QUERY_CHARS]
    budget = budget or ContextBudget()
    tokens = max_tokens if max_tokens is not None else budget.prompt_tokens if query else budget.session_tokens
    if not MIN_TOKENS <= tokens <= MAX_TOKENS:
        raise InvalidInputError(f"max_tokens {tokens} is not valid; give {MIN_TOKENS} to {MAX_TOKENS}")
    room = int(tokens * CHARS_PER_TOKEN) if max_chars is None else min(int(tokens * CHARS_PER_TOKEN), max_chars)
    thread_name = check_conversation(conversation) if conversation is not None else None
    if session is not None:
        check_text("session", session, max_chars=MAX_SESSION_CHARS)
    # A prompt's vector is computed (in a worker thread) while core memory and the keyword legs are read.
    async with embedding_of(scope, query, "hybrid" if query else "keyword") as vector, scope.sessions.begin() as db:
        agent_row = await resolve_agent_ref(db, scope, agent, create=create_agent)
        thread = (
            await message_repo.get_conversation(db, scope.owner_id, agent_row.id, thread_name) if thread_name else None
        )
        if session and not query:  # a session starts: what sessions were given long ago is forgotten
            await context_repo.forget_given(db, scope.owner_id, agent_row.id, before=datetime.now(UTC) - FORGET_AFTER)
        seen = await context_repo.given(db, scope.owner_id, agent_row.id, session) if session else set()
        core = [block_piece(block) for block in await block_repo.of_agent(db, scope.owner_id, agent_row.id)]
        summary = await summary_piece(db, thread) if thread is not None else None
        if vector is not None:
            candidates = await recalled(db, scope, agent_row, query, vector, thread)
        else:
            candidates = await recent(db, scope, agent_row, thread)
        frame = Frame(agent_row.name, recalling=vector is not None)
        chosen = fit(room - frame.overhead, core, summary, candidates, seen)
        if session:
            await context_repo.remember_given(
                db, scope.owner_id, agent_row.id, session, [key for piece in chosen for key in piece.ids]
            )
    text = frame.render(chosen)
    return MemoryContext(
        agent=agent_row.name,
        text=text,
        tokens=estimate_tokens(text),
        budget=tokens,
        items=[piece.item() for piece in chosen],
        recalled=sum(piece.kind in ("passage", "conversation") for piece in chosen) if query else 0,
    )


async def forget_session(scope: Scope, agent: str | None, session: str, *, create_agent: bool = False) -> int:
    """Forget what `session` was given (its host cleared or compacted the context, which holds none of it now);
    returns how many items were forgotten."""
    async with scope.sessions.begin() as db:
        agent_row = await resolve_agent_ref(db, scope, agent, create=create_agent)
        return await context_repo.forget_given(db, scope.owner_id, agent_row.id, host_session=session)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class Frame:
    """The wrapping of the items: a header saying what they are, and sections by kind."""

    def __init__(self, agent: str, *, recalling: bool) -> None:
        self.agent = agent
        self.recalling = recalling
        samples = [Piece(kind=kind, source="", date=None, body="", ids=[]) for kind in ("core", "passage")]
        self.overhead = len(self.render(samples)) - sum(sample.size for sample in samples) + 2

    def render(self, pieces: Sequence[Piece]) -> str:
        if not pieces:
            return ""
        core = [piece.render() for piece in pieces if piece.kind == "core"]
        summary = [piece.render() for piece in pieces if piece.kind == "summary"]
        other = [piece.render() for piece in pieces if piece.kind in ("passage", "conversation")]
        parts = [
            f"<engram_memory agent={quoteattr(self.agent)}>",
            "Long-term memory (Engram) for this conversation. Core memory holds durable facts; "
            + (
                "recalled items, best match first, are earlier conversations and notes that may bear on the "
                "user's message (dated; they may be outdated)."
                if self.recalling
                else "recent activity shows the latest conversations and notes (dated)."
            ),
        ]
        if core:
            parts += ["<core_memory>", *core, "</core_memory>"]
        parts += summary
        if other:
            section = "recalled" if self.recalling else "recent_activity"
            parts += [f"<{section}>", *other, f"</{section}>"]
        parts.append("</engram_memory>")
        return "\n".join(parts)


def fit(room: int, core: list[Piece], summary: Piece | None, candidates: list[Piece], seen: set[str]) -> list[Piece]:
    """Core memory, the summary, then candidates best first while they fit; nothing the session was given already.

    Core memory is kept CORE_SHARE of the room (the rest, if it needs less); the others fill what it leaves,
    and core memory then takes whatever they did not use, its largest blocks cut if they must be.
    """
    blocks = [piece for piece in core if not set(piece.ids) <= seen]
    reserved = min(sum(block.size for block in blocks), int(room * CORE_SHARE))
    chosen: list[Piece] = []
    used = 0
    if summary is not None and not set(summary.ids) <= seen:
        limit = int((room - reserved) * SUMMARY_SHARE) - (summary.size - len(summary.body))
        if limit >= MIN_SUMMARY_CHARS:
            chosen.append(replace(summary, body=cut(summary.body, limit)))
            used += chosen[-1].size
    shown = set(seen)
    for candidate in candidates:
        piece = without_shown(candidate, shown)
        if piece is None or reserved + used + piece.size > room:
            continue
        chosen.append(piece)
        shown.update(piece.ids)
        used += piece.size
    return fit_core(blocks, room - used) + chosen


def fit_core(blocks: list[Piece], room: int) -> list[Piece]:
    """The blocks in their order, the largest cut so that all fit in `room` (smaller blocks whole: each block
    gets an equal share of what the smaller ones leave)."""
    limits: dict[int, int] = {}
    left = room
    by_size = sorted(range(len(blocks)), key=lambda index: blocks[index].size)
    for place, index in enumerate(by_size):
        share = left // (len(blocks) - place)
        limits[index] = min(blocks[index].size, share)
        left -= limits[index]
    fitted = []
    for index, block in enumerate(blocks):
        over = block.size - limits[index]
        fitted.append(
            replace(block, body=cut(block.body, max(len(block.body) - over, MIN_BLOCK_CHARS))) if over > 0 else block
        )
    return fitted


def without_shown(piece: Piece, shown: set[str]) -> Piece | None:
    """The piece without what was shown already: None if its recalled message (or passage) was; a conversation
    part keeps the lines not shown yet."""
    if piece.hit in shown or set(piece.ids) <= shown:
        return None
    if piece.kind != "conversation" or not shown.intersection(piece.ids):
        return piece
    kept = [(key, line) for key, line in zip(piece.ids, piece.body.split("\n"), strict=True) if key not in shown]
    return replace(piece, body="\n".join(line for _, line in kept), ids=[key for key, _ in kept])


def block_piece(block: Block) -> Piece:
    return Piece(
        kind="core",
        source=block.label,
        date=block.updated_at,
        body=block.value,
        ids=[f"block:{block.id}:{block.version}"],
        attributes={"label": block.label},
    )


async def summary_piece(db: AsyncSession, thread: Conversation) -> Piece | None:
    summary = await summary_repo.latest(db, thread.id)
    if summary is None or not summary.text.strip():
        return None
    return Piece(
        kind="summary",
        source=thread.name,
        date=summary.created_at,
        body=summary.text.strip(),
        ids=[f"summary:{summary.id}"],
        attributes={
            "conversation": thread.name,
            "covers": f"messages {summary.first_ordinal}-{summary.last_ordinal}",
            "date": _day(summary.created_at),
        },
    )


async def recalled(
    db: AsyncSession,
    scope: Scope,
    agent_row: NamedAgent,
    query: str,
    vector: QueryVector,
    thread: Conversation | None,
    *,
    floor: float = RELEVANCE_FLOOR,
) -> list[Piece]:
    """The passages and conversation parts that bear on the query, best first by recall's blend (CANDIDATES of
    them): those whose meaning is at least `floor` close to it (cosine similarity), and those holding one of its
    identifiers. None for a query of fewer than MIN_CONTENT_WORDS words. `vector` is the query's, perhaps
    still being computed."""
    from engram.storage.passages import PassageFilter

    if await context_repo.content_words(db, query) < MIN_CONTENT_WORDS:
        return []
    has_passages, has_messages = await context_repo.holdings(db, scope.owner_id, agent_row.id)
    scores: dict[uuid.UUID, float] = {}
    similarity: dict[uuid.UUID, float] = {}
    by_words: list[uuid.UUID] = []
    if has_passages:
        nearest, matching = await run_legs(
            db, scope, "passages", agent_row.id, query=query, vector=vector, keywords="any", where=PassageFilter()
        )
        scores = search.blend([(nearest or [], VECTOR_WEIGHT), (matching or [], KEYWORD_WEIGHT)])
        similarity = dict(nearest or [])
        by_words = [key for key, _ in matching or []]
    is_passage = set(scores)
    if has_messages:
        where = context_repo.OtherConversations(excluded_conversation_id=thread.id if thread is not None else None)
        nearest, matching = await run_legs(
            db, scope, "messages", agent_row.id, query=query, vector=vector, keywords="any", where=where
        )
        message_scores = search.blend([(nearest or [], VECTOR_WEIGHT), (matching or [], KEYWORD_WEIGHT)])
        placed = await message_repo.surroundings(db, scope.owner_id, agent_row.id, list(message_scores), where)
        scores |= with_neighbours(message_scores, placed)
        similarity |= dict(nearest or [])
        by_words += [key for key, _ in matching or []]
    close = {key for key, value in similarity.items() if value >= floor}
    wanted = identifiers(query)
    pool = close | (set(by_words) if wanted else set())
    ranked = sorted(pool, key=lambda key: (-scores.get(key, 0.0), str(key)))
    passages, messages = await read_rows(db, [key for key in ranked if key not in close], is_passage)
    texts = {key: row.text for key, row in (passages | messages).items()}
    chosen = [
        key
        for key in ranked
        if (key in close or holds(texts.get(key, ""), wanted))
        and not (key not in is_passage and similarity.get(key, 0.0) >= ECHO_SIMILARITY)
    ][:CANDIDATES]
    more_passages, more_messages = await read_rows(
        db, [key for key in chosen if key not in passages and key not in messages], is_passage
    )
    passages |= more_passages
    messages |= more_messages
    around = await message_repo.neighbours(db, [messages[key] for key in chosen if key in messages])
    pieces = [
        passage_piece(passages[key], query, scores[key])
        if key in passages
        else conversation_piece(messages[key], around, query, scores[key])
        for key in chosen
    ]
    for piece, key in zip(pieces, chosen, strict=True):
        piece.similarity = similarity.get(key, 0.0)
    return pieces


async def read_rows(
    db: AsyncSession, keys: list[uuid.UUID], is_passage: set[uuid.UUID]
) -> tuple[dict[uuid.UUID, Passage], dict[uuid.UUID, FoundMessage]]:
    """The passages and messages with these ids (no query for a kind none of them is)."""
    passage_keys = [key for key in keys if key in is_passage]
    message_keys = [key for key in keys if key not in is_passage]
    passages = await passage_repo.fetch(db, passage_keys) if passage_keys else {}
    messages = await message_repo.found(db, message_keys) if message_keys else {}
    return passages, messages


IDENTIFIER = re.compile(r"[A-Za-z0-9][\w.-]*[A-Za-z0-9]")


def identifiers(query: str) -> set[str]:
    """The query's exact names that embeddings blur: words with a digit (ticket 48231, E4021, port 8443, 3C-207),
    an underscore (parse_duration, ERR_SSL_0x21) or a dot between letters (strings.py, billing.rounding_mode)."""
    return {
        word.lower()
        for word in IDENTIFIER.findall(query)
        if (len(word) >= 3 and any(char.isdigit() for char in word))
        or "_" in word
        or re.search(r"[A-Za-z]\.[A-Za-z]", word)
    }


def holds(text: str, wanted: set[str]) -> bool:
    """Whether `text` holds one of the identifiers as a word of its own."""
    lowered = text.lower()
    return any(re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", lowered) for word in wanted)


def passage_piece(passage: Passage, query: str, score: float | None, limit: int = HIT_CHARS) -> Piece:
    body, _ = snippet(" ".join(passage.text.split()), query, limit)
    return Piece(
        kind="passage",
        source=passage.source or "archival memory",
        date=passage.created_at,
        body=body,
        ids=[f"passage:{passage.id}"],
        score=score,
        attributes={"date": _day(passage.created_at), "tags": ",".join(passage.tags), "source": passage.source or ""},
    )


def conversation_piece(
    hit: FoundMessage, around: dict[tuple[uuid.UUID, int], FoundMessage], query: str, score: float
) -> Piece:
    """The recalled message with the messages just before and after it, one line each."""
    lines: list[tuple[str, str]] = []
    for step in (-1, 0, 1):
        row = hit if step == 0 else around.get((hit.conversation_id, hit.ordinal + step))
        if row is None or row.role not in ("user", "assistant", "system"):
            continue
        text = (
            snippet(" ".join(row.text.split()), query, HIT_CHARS)[0]
            if step == 0
            else shorten(row.text, NEIGHBOUR_CHARS)
        )
        lines.append((f"message:{row.id}", f"{row.role}: {text}"))
    return Piece(
        kind="conversation",
        source=hit.conversation,
        date=hit.created_at,
        body="\n".join(line for _, line in lines),
        ids=[key for key, _ in lines],
        score=score,
        attributes={"name": hit.conversation, "date": _day(hit.created_at)},
        hit=f"message:{hit.id}",
    )


async def recent(db: AsyncSession, scope: Scope, agent_row: NamedAgent, thread: Conversation | None) -> list[Piece]:
    """At a session's start: the latest conversations (their last messages) and passages, newest first."""
    conversations = await context_repo.latest_conversations(
        db,
        scope.owner_id,
        agent_row.id,
        excluding=thread.id if thread is not None else None,
        limit=RECENT_CONVERSATIONS,
        messages=RECENT_MESSAGES,
    )
    pieces = [
        Piece(
            kind="conversation",
            source=other.name,
            date=other.last_at,
            body="\n".join(f"{role}: {shorten(said, RECENT_CHARS)}" for _, role, said in other.last_messages),
            ids=[f"message:{message_id}" for message_id, _, _ in other.last_messages],
            attributes={
                "name": other.name,
                "title": other.title,
                "date": _day(other.last_at),
                "messages": str(other.message_count),
            },
        )
        for other in conversations
    ]
    for passage in await passage_repo.recent(db, scope.owner_id, agent_row.id, limit=RECENT_PASSAGES):
        pieces.append(passage_piece(passage, "", None, RECENT_CHARS))
    return sorted(pieces, key=lambda piece: piece.date or datetime.min.replace(tzinfo=UTC), reverse=True)


def _day(moment: datetime) -> str:
    return moment.date().isoformat()
