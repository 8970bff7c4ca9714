"""Memory as whole records, named by id and read a keyset page at a time: what the REST API and the web UI
show. (The MCP tools show shortened text, sized for a model's context.)

Changes still go through the operations of agents, blocks, core, archival and recall; this module only
reads. Every read is confined to the scope's owner: another principal's id is "not found", never "forbidden".
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from engram.storage.errors import InvalidInputError, NotFoundError
from engram.storage.paging import Cursor  # (imports no SQLAlchemy: tools/loop/turn imports this module)
from engram.tools.arguments import DEFAULT_CONVERSATION, check_conversation, check_label, check_tags
from engram.tools.repositories import agent_repo, block_repo, message_repo, passage_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage.schema import Agent, Block, Message, Passage

Kind = Literal["agent", "block", "passage", "message", "conversation"]
MAX_PAGE = 1000


class BlockRecord(BaseModel):
    id: uuid.UUID
    label: str
    value: str
    limit: int
    description: str
    read_only: bool
    version: int
    standalone: bool
    agents: list[str]
    created_at: datetime
    updated_at: datetime


class AgentRecord(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    system: str  # '' for Engram's default memory-agent prompt
    model: str | None
    context_window: int | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    blocks: list[BlockRecord]


class PassageRecord(BaseModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    text: str
    tags: list[str]
    source: str | None
    metadata: dict[str, Any]
    created_at: datetime


class MessageRecord(BaseModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    conversation: str
    ordinal: int
    role: str
    text: str
    content: dict[str, Any]
    created_at: datetime


class ConversationRecord(BaseModel):
    id: uuid.UUID
    name: str
    title: str
    source: str
    messages: int
    context_start: int  # the built-in agent sees the messages from this ordinal on
    created_at: datetime
    last_message_at: datetime | None


class DayActivity(BaseModel):
    day: date
    passages: int
    messages: int


class Activity(BaseModel):
    days: list[DayActivity]  # oldest first, every day present


class AgentStatistics(BaseModel):
    blocks: int
    passages: int
    conversations: int
    messages: int
    last_activity: datetime | None
    messages_waiting_for_embedding: int


def parse_id(kind: Kind, value: str) -> uuid.UUID:
    """The uuid in a `kind-<uuid>` id (Letta's form) or in a bare uuid."""
    text = value.strip()
    try:
        return uuid.UUID(text.removeprefix(f"{kind}-"))
    except ValueError:
        article = "an" if kind[0] in "aeiou" else "a"
        raise InvalidInputError(
            f"{value[:80]!r} is not {article} {kind} id; {kind} ids look like '{kind}-<uuid>'"
        ) from None


def cursor(limit: int, after: str | None, before: str | None, *, kind: Kind, descending: bool) -> Cursor:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit {limit} is not valid; ask for 1 to {MAX_PAGE} items a page")
    return Cursor(
        limit=limit,
        after=parse_id(kind, after) if after else None,
        before=parse_id(kind, before) if before else None,
        descending=descending,
    )


async def owned_agent(session: AsyncSession, scope: Scope, agent_id: uuid.UUID) -> Agent:
    found = await agent_repo.get(session, scope.owner_id, agent_id)
    if found is None:
        raise NotFoundError(f"there is no agent agent-{agent_id}; list your agents to see their ids")
    return found


async def agent_name(scope: Scope, agent_id: uuid.UUID) -> str:
    """The name of the scope's agent with this id, for the operations that take names."""
    async with scope.sessions.begin() as session:
        return (await owned_agent(session, scope, agent_id)).name


async def agent_record(scope: Scope, agent_id: uuid.UUID) -> AgentRecord:
    async with scope.sessions.begin() as session:
        [record] = await _agent_records(session, scope, [await owned_agent(session, scope, agent_id)])
    return record


async def agent_records(
    scope: Scope, page: Cursor, *, name: str | None = None, tags: list[str] | None = None, match_all_tags: bool = False
) -> list[AgentRecord]:
    async with scope.sessions.begin() as session:
        rows = await agent_repo.page(
            session, scope.owner_id, page, name=name, tags=check_tags(tags) or None, match_all_tags=match_all_tags
        )
        return await _agent_records(session, scope, rows)


async def _agent_records(session: AsyncSession, scope: Scope, agents: list[Agent]) -> list[AgentRecord]:
    blocks = await block_repo.of_agents(session, scope.owner_id, [agent.id for agent in agents])
    attached = await block_repo.agents_of(session, scope.owner_id, [b.id for found in blocks.values() for b in found])
    return [
        AgentRecord(
            id=agent.id,
            name=agent.name,
            description=agent.description,
            system=agent.system,
            model=str((agent.llm or {}).get("model") or "") or None,
            context_window=int((agent.llm or {}).get("context_window") or 0) or None,
            tags=list(agent.tags),
            created_at=agent.created_at,
            updated_at=agent.updated_at,
            blocks=[block_record(block, attached[block.id]) for block in blocks[agent.id]],
        )
        for agent in agents
    ]


def block_record(block: Block, agents: list[str]) -> BlockRecord:
    return BlockRecord(
        id=block.id,
        label=block.label,
        value=block.value,
        limit=block.char_limit,
        description=block.description,
        read_only=block.read_only,
        version=block.version,
        standalone=block.standalone,
        agents=agents,
        created_at=block.created_at,
        updated_at=block.updated_at,
    )


async def block_by_id(scope: Scope, block_id: uuid.UUID) -> BlockRecord:
    async with scope.sessions.begin() as session:
        found = await block_repo.by_id(session, scope.owner_id, block_id)
        if found is None:
            raise NotFoundError(f"there is no block block-{block_id}; list your blocks to see their ids")
        attached = await block_repo.agents_of(session, scope.owner_id, [found.id])
    return block_record(found, attached[found.id])


async def agent_block(scope: Scope, agent_id: uuid.UUID, label: str) -> BlockRecord:
    """The block with this label in the agent's core memory."""
    check_label(label)
    async with scope.sessions.begin() as session:
        agent = await owned_agent(session, scope, agent_id)
        found = await block_repo.get(session, scope.owner_id, agent.id, label)
        if found is None:
            labels = ", ".join(b.label for b in await block_repo.of_agent(session, scope.owner_id, agent.id))
            raise NotFoundError(f"agent '{agent.name}' has no block '{label}'; its blocks are: {labels or 'none'}")
        attached = await block_repo.agents_of(session, scope.owner_id, [found.id])
    return block_record(found, attached[found.id])


async def block_records(scope: Scope, page: Cursor, *, label: str | None = None) -> list[BlockRecord]:
    if label is not None:
        check_label(label)
    async with scope.sessions.begin() as session:
        rows = await block_repo.page(session, scope.owner_id, page, label=label)
        attached = await block_repo.agents_of(session, scope.owner_id, [row.id for row in rows])
    return [block_record(row, attached[row.id]) for row in rows]


def passage_record(passage: Passage) -> PassageRecord:
    return PassageRecord(
        id=passage.id,
        agent_id=passage.agent_id,
        text=passage.text,
        tags=list(passage.tags),
        source=passage.source,
        metadata=dict(passage.meta or {}),
        created_at=passage.created_at,
    )


async def passage_records(
    scope: Scope, agent_id: uuid.UUID, page: Cursor, *, containing: str | None = None
) -> list[PassageRecord]:
    async with scope.sessions.begin() as session:
        agent = await owned_agent(session, scope, agent_id)
        rows = await passage_repo.page(session, scope.owner_id, agent.id, page, containing=containing or None)
    return [passage_record(row) for row in rows]


async def passages_by_id(scope: Scope, agent_id: uuid.UUID, passage_ids: list[uuid.UUID]) -> list[PassageRecord]:
    """The agent's passages with these ids, in the order given (ids it does not hold are left out)."""
    async with scope.sessions.begin() as session:
        agent = await owned_agent(session, scope, agent_id)
        found = await passage_repo.fetch(session, passage_ids)
    return [passage_record(found[i]) for i in passage_ids if i in found and found[i].agent_id == agent.id]


def message_record(row: Message, conversation: str) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        agent_id=row.agent_id,
        conversation=conversation,
        ordinal=row.ordinal,
        role=row.role,
        text=row.text,
        content=dict(row.content or {}),
        created_at=row.created_at,
    )


async def message_records(
    scope: Scope, agent_id: uuid.UUID, page: Cursor, *, conversation: str | None = None
) -> list[MessageRecord]:
    """A page of one conversation's messages (the default conversation when none is named); a conversation
    that has no messages yet is an empty list."""
    name = check_conversation(DEFAULT_CONVERSATION if conversation is None else conversation)
    async with scope.sessions.begin() as session:
        agent = await owned_agent(session, scope, agent_id)
        thread = await message_repo.get_conversation(session, scope.owner_id, agent.id, name)
        if thread is None:
            if page.after or page.before:
                raise NotFoundError(f"agent '{agent.name}' has no conversation '{name}' to page through")
            return []
        rows = await message_repo.page(session, thread, page)
    return [message_record(row, name) for row in rows]


async def conversation_records(scope: Scope, agent_id: uuid.UUID, page: Cursor) -> list[ConversationRecord]:
    async with scope.sessions.begin() as session:
        agent = await owned_agent(session, scope, agent_id)
        rows = await message_repo.conversations_page(session, scope.owner_id, agent.id, page)
    return [
        ConversationRecord(
            id=row.id,
            name=row.name,
            title=row.title,
            source=row.source,
            messages=row.message_count,
            context_start=row.context_start,
            created_at=row.created_at,
            last_message_at=row.last_message_at,
        )
        for row in rows
    ]


async def agent_statistics(scope: Scope, agent_id: uuid.UUID) -> AgentStatistics:
    async with scope.sessions.begin() as session:
        agent = await owned_agent(session, scope, agent_id)
        return AgentStatistics(**await agent_repo.statistics(session, scope.owner_id, agent.id))


async def turn_of(scope: Scope, agent_id: uuid.UUID, key: str, *, limit: int = 200) -> list[MessageRecord] | None:
    """The messages stored for the user message with this external key in the default conversation (it and
    what followed until the next user message), or None if there is no such message: what a retried request
    is answered with."""
    async with scope.sessions.begin() as session:
        agent = await owned_agent(session, scope, agent_id)
        thread = await message_repo.get_conversation(session, scope.owner_id, agent.id, DEFAULT_CONVERSATION)
        first = await message_repo.by_external_key(session, thread, key) if thread is not None else None
        if thread is None or first is None:
            return None
        rows = await message_repo.transcript(session, thread, first=first.ordinal + 1, limit=limit)
    following = []
    for row in rows:
        if row.role == "user":
            break
        following.append(message_record(row, DEFAULT_CONVERSATION))
    return [message_record(first, DEFAULT_CONVERSATION), *following]


MAX_ACTIVITY_DAYS = 366


async def agent_activity(scope: Scope, agent_id: uuid.UUID, days: int) -> Activity:
    """Passages and messages stored per day (UTC) over the last `days` days, today included."""
    if not 1 <= days <= MAX_ACTIVITY_DAYS:
        raise InvalidInputError(f"days {days} is not valid; ask for 1 to {MAX_ACTIVITY_DAYS} days")
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    async with scope.sessions.begin() as session:
        agent = await owned_agent(session, scope, agent_id)
        counts = await agent_repo.activity(
            session, scope.owner_id, agent.id, datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        )
    return Activity(
        days=[
            DayActivity(day=day, passages=counts.get(day, (0, 0))[0], messages=counts.get(day, (0, 0))[1])
            for day in (first + timedelta(days=offset) for offset in range(days))
        ]
    )


async def waiting_for_embedding(scope: Scope) -> int:
    """How many of the scope's recorded messages the embedding worker has still to embed."""
    async with scope.sessions.begin() as session:
        return await message_repo.count_pending(session, owner_id=scope.owner_id)
