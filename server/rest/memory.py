"""Archival memory (Letta's routes) and what Engram adds for people curating memory: conversations and their
search, block history and undo, and each agent's memory statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from engram.server.rest import letta
from engram.server.rest.agents import After, Before, Limit, Order
from engram.server.rest.scope import ScopeDep, page_of
from engram.tools.arguments import Role, check_text
from engram.tools.loop import turn
from engram.tools.memory import archival, core, recall, records
from engram.tools.memory.hybrid import MAX_QUERY_CHARS

router = APIRouter()


@router.post("/agents/{agent_id}/archival-memory", tags=["archival memory"])
async def create_passage(agent_id: str, body: letta.CreatePassage, scope: ScopeDep) -> list[letta.Passage]:
    """Store a passage (identical text is stored once: its passage comes back)."""
    own_id = records.parse_id("agent", agent_id)
    stored = await archival.archival_memory_insert(
        scope, body.text, tags=body.tags, agent=await records.agent_name(scope, own_id)
    )
    found = await records.passages_by_id(scope, own_id, [records.parse_id("passage", stored.id)])
    return [letta.passage(p) for p in found]


@router.get("/agents/{agent_id}/archival-memory", tags=["archival memory"])
async def list_passages(
    agent_id: str,
    scope: ScopeDep,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    ascending: Annotated[bool, Query(description="Oldest first (true) or newest first.")] = True,
    search: Annotated[str | None, Query(description="Only passages whose text contains this.", max_length=1000)] = None,
) -> list[letta.Passage]:
    found = await records.passage_records(
        scope,
        records.parse_id("agent", agent_id),
        page_of(limit, after, before, "asc" if ascending else "desc", "passage"),
        containing=search,
    )
    return [letta.passage(p) for p in found]


@router.get("/agents/{agent_id}/archival-memory/search", tags=["archival memory"])
async def search_passages(
    agent_id: str,
    scope: ScopeDep,
    query: Annotated[str, Query(description="What to look for, in words or as a description.")],
    top_k: Annotated[int, Query(ge=1, le=archival.MAX_TOP_K)] = 10,
    tags: Annotated[list[str] | None, Query(description="Only passages with these tags.")] = None,
    tag_match_mode: Annotated[Literal["any", "all"], Query()] = "any",
    start_datetime: Annotated[datetime | None, Query()] = None,
    end_datetime: Annotated[datetime | None, Query()] = None,
) -> letta.SearchResults:
    """Hybrid search (meaning and exact words) of the agent's passages, best first."""
    check_text("query", query, max_chars=MAX_QUERY_CHARS)
    name = await records.agent_name(scope, records.parse_id("agent", agent_id))
    where = archival.passage_filter(
        tags,
        tag_match_mode,
        start_datetime.isoformat() if start_datetime else None,
        end_datetime.isoformat() if end_datetime else None,
    )
    found = await archival.find_passages(scope, name, query, where, mode="hybrid", size=top_k)
    results = [
        letta.SearchResult(
            id=f"passage-{passage_id}",
            content=found.passages[passage_id].text,
            timestamp=found.passages[passage_id].created_at,
            tags=list(found.passages[passage_id].tags),
            score=found.relevance(passage_id),
            found_by=found.found_by[passage_id],
        )
        for passage_id, _ in found.ranked[:top_k]
        if passage_id in found.passages
    ]
    return letta.SearchResults(count=len(results), results=results)


@router.delete("/agents/{agent_id}/archival-memory/{memory_id}", tags=["archival memory"])
async def delete_passage(agent_id: str, memory_id: str, scope: ScopeDep) -> archival.PassageDeleted:
    name = await records.agent_name(scope, records.parse_id("agent", agent_id))
    return await archival.archival_memory_delete(scope, str(records.parse_id("passage", memory_id)), agent=name)


@router.get("/agents/{agent_id}/conversations", tags=["engram: conversations"])
async def list_conversations(
    agent_id: str, scope: ScopeDep, limit: Limit = 50, after: After = None, before: Before = None, order: Order = "asc"
) -> list[records.ConversationRecord]:
    """The agent's conversations (recall memory), oldest first; a transcript is
    GET /v1/agents/{agent_id}/messages?conversation_id=NAME."""
    return await records.conversation_records(
        scope, records.parse_id("agent", agent_id), page_of(limit, after, before, order, "conversation")
    )


@router.get("/agents/{agent_id}/conversations/search", tags=["engram: conversations"])
async def search_conversations(
    agent_id: str,
    scope: ScopeDep,
    query: Annotated[str, Query(description="What to look for: words, names, numbers, or a description.")],
    roles: Annotated[list[Role] | None, Query()] = None,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=recall.MAX_LIMIT)] = 10,
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
    conversation: Annotated[str | None, Query(description="Only this conversation.")] = None,
) -> recall.MessageSearchPage:
    """conversation_search: hybrid search of every recorded message, each hit with its neighbours."""
    name = await records.agent_name(scope, records.parse_id("agent", agent_id))
    return await recall.conversation_search(
        scope, query, roles, start_date, end_date, limit, page, conversation, agent=name
    )


@router.delete("/agents/{agent_id}/conversations/{conversation}", tags=["engram: conversations"])
async def delete_conversation(agent_id: str, conversation: str, scope: ScopeDep) -> recall.ConversationDeleted:
    name = await records.agent_name(scope, records.parse_id("agent", agent_id))
    return await recall.conversation_delete(scope, conversation, agent=name)


@router.get("/agents/{agent_id}/conversations/{conversation}/summary", tags=["engram: conversations"])
async def conversation_summary(agent_id: str, conversation: str, scope: ScopeDep) -> turn.SummaryView:
    """The built-in agent's newest summary of the conversation, and where its context starts."""
    name = await records.agent_name(scope, records.parse_id("agent", agent_id))
    return await turn.current_summary(scope, name, conversation)


@router.get("/agents/{agent_id}/core-memory/blocks/{block_label}/history", tags=["engram: block history"])
async def block_history(
    agent_id: str,
    block_label: str,
    scope: ScopeDep,
    limit: Annotated[int, Query(ge=1, le=core.MAX_HISTORY)] = 10,
    full: Annotated[bool, Query(description="Whole texts (for a diff) instead of their beginnings.")] = False,
) -> core.BlockVersions:
    """The block's versions, newest first: each one's text, what made it, and when."""
    name = await records.agent_name(scope, records.parse_id("agent", agent_id))
    if full:
        return await core.block_versions(scope, name, block_label, limit, chars=None)
    return await core.core_memory_history(scope, block_label, agent=name, limit=limit)


@router.post("/agents/{agent_id}/core-memory/blocks/{block_label}/undo", tags=["engram: block history"])
async def block_undo(agent_id: str, block_label: str, scope: ScopeDep) -> letta.Block:
    """Bring back the block's previous text, as a new version (itself undoable)."""
    own_id = records.parse_id("agent", agent_id)
    await core.undo(scope, await records.agent_name(scope, own_id), block_label, actor="rest")
    return letta.block(await records.agent_block(scope, own_id, block_label))


@router.get("/agents/{agent_id}/activity", tags=["engram: statistics"])
async def activity(
    agent_id: str,
    scope: ScopeDep,
    days: Annotated[int, Query(ge=1, le=records.MAX_ACTIVITY_DAYS, description="How many days, today included.")] = 30,
) -> records.Activity:
    """Passages and messages stored per day (UTC), oldest day first, every day present."""
    return await records.agent_activity(scope, records.parse_id("agent", agent_id), days)


@router.get("/agents/{agent_id}/statistics", tags=["engram: statistics"])
async def statistics(agent_id: str, scope: ScopeDep) -> records.AgentStatistics:
    """How much memory the agent holds, when it last changed, and how many messages wait for embedding."""
    return await records.agent_statistics(scope, records.parse_id("agent", agent_id))
