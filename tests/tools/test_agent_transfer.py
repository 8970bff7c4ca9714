"""Files told apart by their content, whatever their name: Engram's zip, Letta's agent files (MemGPT's envelopes
unwrapped, its events kept as system messages, its tools reported as not imported) and the MCP memory server's
graph (a passage per entity and relation; a re-import adds only what is new)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from engram.server.runtime import open_runtime
from engram.server.settings import Settings
from engram.storage.errors import InvalidInputError
from engram.storage.schema import Message, Passage
from engram.tools.ingest.engram_files import export_agents
from engram.tools.ingest.transfer import detect_format, import_file
from engram.tools.memory.agents import agent_create, agent_list, agent_show
from engram.tools.memory.archival import archival_memory_insert, archival_memory_search
from engram.tools.memory.recall import conversation_search
from engram.tools.scope import Scope

pytestmark = pytest.mark.anyio


@pytest.fixture
async def scope(settings: Settings) -> AsyncIterator[Scope]:
    async with open_runtime(settings) as runtime:
        yield await runtime.scope()


def envelope(kind: str, **fields: str) -> str:
    return json.dumps({"type": kind, **fields, "time": "2024-03-01 10:00:00 AM UTC+0000"})


def memgpt_file() -> dict[str, Any]:
    """A Letta 0.6 file as MemGPT wrote its history: user turns, heartbeats and logins in JSON envelopes."""
    return {
        "version": "0.6.6",
        "name": "memgpt-bot",
        "system": "You are MemGPT.",
        "core_memory": [{"label": "human", "value": "First name: Chad", "limit": 2000}],
        "tools": [
            "send_message",
            "archival_memory_search",
            {"name": "roll_dice", "source_code": "def roll_dice(): ..."},
        ],
        "messages": [
            {"role": "system", "text": "You are MemGPT.\n### Memory"},
            {"role": "user", "text": envelope("login", last_login="Never (first login)")},
            {"role": "user", "text": envelope("user_message", message="My favourite colour is teal.")},
            {
                "role": "assistant",
                "text": "The user shared a preference.",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "send_message", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "text": '{"status": "OK"}', "tool_call_id": "c1", "name": "send_message"},
            {
                "role": "user",
                "text": envelope("heartbeat", reason="[This is an automated system message hidden from the user]"),
            },
            {"role": "system", "text": envelope("system_alert", message="Memory pressure: summarize soon.")},
        ],
    }


async def stored_messages(scope: Scope, agent: str) -> list[Message]:
    agent_id = (await agent_show(scope, agent)).id
    async with scope.sessions.begin() as session:
        rows = await session.scalars(select(Message).where(Message.agent_id == agent_id).order_by(Message.ordinal))
        return list(rows)


async def test_memgpt_envelopes_are_unwrapped_and_its_events_kept_as_system_messages(scope: Scope) -> None:
    data = json.dumps(memgpt_file()).encode()
    assert detect_format(io.BytesIO(data), "bot.af") == "letta"
    report = await import_file(scope, io.BytesIO(data), where="bot.af")
    assert (report.format, report.agents, report.messages) == ("letta", ["memgpt-bot"], 6)
    assert report.skipped == [
        "3 Letta tools (archival_memory_search, roll_dice, send_message): Letta tools are code that Engram does not "
        "run; its agents use Engram's own memory tools"
    ]
    stored = await stored_messages(scope, "memgpt-bot")
    assert [(m.role, m.text, m.content.get("event")) for m in stored] == [
        ("system", "[login] last login: Never (first login)", "login"),
        ("user", "My favourite colour is teal.", None),
        ("assistant", "The user shared a preference.\n[called send_message]", None),
        ("tool", '{"status": "OK"}', None),
        ("system", "[heartbeat] [This is an automated system message hidden from the user]", "heartbeat"),
        ("system", "[system alert] Memory pressure: summarize soon.", "system_alert"),
    ]
    said = await conversation_search(scope, "automated system message login", roles=["user"], agent="memgpt-bot")
    assert [hit.text for hit in said.results] == []
    teal = await conversation_search(scope, "favourite colour", roles=["user"], agent="memgpt-bot")
    assert [hit.text for hit in teal.results] == ["My favourite colour is teal."]


def current_file(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "agents": [
            {
                "id": "agent-0",
                "name": "helper",
                "system": "You help.",
                "block_ids": ["block-0"],
                "tool_ids": [tool["id"] for tool in tools],
                "messages": [
                    {"id": "message-0", "role": "system", "content": [{"type": "text", "text": "You help."}]},
                    {"id": "message-1", "role": "user", "content": [{"type": "text", "text": "Hello"}]},
                ],
            }
        ],
        "blocks": [{"id": "block-0", "label": "human", "value": "Bo"}],
        "tools": tools,
    }


async def test_a_letta_file_imported_with_replace_takes_the_place_of_the_agent(scope: Scope) -> None:
    await agent_create(scope, "helper", description="mine")
    await archival_memory_insert(scope, "Mine alone.", agent="helper")
    tools = [{"id": "tool-0", "name": "web_search", "tool_type": "custom", "source_type": "python"}]
    report = await import_file(scope, io.BytesIO(json.dumps(current_file(tools)).encode()), replace=True)
    assert report.skipped[0].startswith("1 Letta tools (web_search): Letta tools are code that Engram does not run")
    info = await agent_show(scope, "helper")
    assert (info.description, [b.label for b in info.blocks]) == ("", ["human"])
    assert (await archival_memory_search(scope, "mine", agent="helper")).results == []


def graph_lines(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


ADA = {
    "type": "entity",
    "name": "Ada",
    "entityType": "person",
    "observations": ["Likes night trains", "Lives in Porto"],
}
ACME = {"type": "entity", "name": "Acme", "entityType": "organization", "observations": ["Makes anvils"]}
WORKS = {"type": "relation", "from": "Ada", "to": "Acme", "relationType": "works_at"}


async def passages_of(scope: Scope, agent: str) -> list[tuple[str, list[str], dict[str, Any], str | None]]:
    agent_id = (await agent_show(scope, agent)).id
    async with scope.sessions.begin() as session:
        rows = await session.scalars(select(Passage).where(Passage.agent_id == agent_id).order_by(Passage.text))
        return [(row.text, list(row.tags), row.meta, row.source) for row in rows]


async def test_a_memory_graph_becomes_a_passage_per_entity_and_relation_and_a_reimport_adds_only_what_is_new(
    scope: Scope,
) -> None:
    data = graph_lines(ADA, ACME, WORKS)
    assert detect_format(io.BytesIO(data), "memory.jsonl") == "memory-graph"
    report = await import_file(scope, io.BytesIO(data), as_name="graph", where="/home/ada/memory.jsonl")
    assert (report.format, report.agents, report.passages, report.skipped) == ("memory-graph", ["graph"], 3, [])
    assert await passages_of(scope, "graph") == [
        ("Acme (organization)\n- Makes anvils", ["organization"], {"graph": "entity", "name": "Acme"}, "memory.jsonl"),
        (
            "Ada (person)\n- Likes night trains\n- Lives in Porto",
            ["person"],
            {"graph": "entity", "name": "Ada"},
            "memory.jsonl",
        ),
        (
            "Ada works_at Acme",
            ["relation"],
            {"graph": "relation", "from": "Ada", "relationType": "works_at", "to": "Acme"},
            "memory.jsonl",
        ),
    ]
    hits = await archival_memory_search(scope, "who lives in Porto?", tags=["person"], agent="graph")
    assert [hit.content for hit in hits.results] == ["Ada (person)\n- Likes night trains\n- Lives in Porto"]

    again = await import_file(scope, io.BytesIO(data), as_name="graph", where="memory.jsonl")
    assert (again.passages, again.skipped) == (0, ["3 entities and relations already stored"])

    moved = {**ADA, "observations": ["Likes night trains", "Lives in Lisbon"]}
    legacy = graph_lines(
        moved, ACME, WORKS, {"type": "relation", "from": "Ada", "to": "Lisbon", "relationType": "lives_in"}
    )
    grown = await import_file(scope, io.BytesIO(legacy), as_name="graph", where="memory.json")
    assert (grown.passages, grown.notes) == (
        2,
        ["1 entities whose observations changed: their earlier passages were replaced"],
    )
    assert [text for text, *_ in await passages_of(scope, "graph")] == [
        "Acme (organization)\n- Makes anvils",
        "Ada (person)\n- Likes night trains\n- Lives in Lisbon",
        "Ada lives_in Lisbon",
        "Ada works_at Acme",
    ]


@pytest.mark.parametrize(
    ("data", "as_name", "says"),
    [
        (graph_lines(ADA), None, "memory.jsonl is a memory graph, which names no agent; pass --as NAME"),
        (graph_lines(ADA) + b"{not json\n", "g", "memory.jsonl line 2 is not valid JSON"),
        (graph_lines(ADA, {"type": "entity", "name": "", "entityType": "x"}), "g", "line 2: 'name' must be a"),
        (graph_lines(ADA, {"type": "note", "text": "hi"}), "g", 'line 2: expected a graph line, {"type": "entity"'),
        (graph_lines({**ADA, "observations": "many"}), "g", "line 1: 'observations' must be a list of strings"),
        (b"", "g", "memory.jsonl is empty"),
        (b"\x00\x01binary", "g", "memory.jsonl is neither a zip archive nor JSON"),
    ],
)
async def test_a_bad_graph_is_refused_naming_the_line_and_nothing_is_written(
    scope: Scope, data: bytes, as_name: str | None, says: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        await import_file(scope, io.BytesIO(data), as_name=as_name, where="memory.jsonl")
    assert says in str(refused.value)
    assert (await agent_list(scope)).agents == []


async def test_each_format_is_told_from_its_content_not_its_name(scope: Scope) -> None:
    await agent_create(scope, "ship")
    zipped = io.BytesIO()
    await export_agents(scope, ["ship"], zipped)
    letta = json.dumps(current_file([]))
    for data, expected in (
        (zipped.getvalue(), "engram"),
        (letta.encode(), "letta"),
        (json.dumps(letta).encode(), "letta"),  # a file holding its JSON as a string
        (b"\xef\xbb\xbf" + graph_lines(WORKS), "memory-graph"),
        (b'{"type": "entity", "name": "' + b"x" * 70_000 + b'"}\n', "memory-graph"),  # longer than what is peeked at
    ):
        assert detect_format(io.BytesIO(data), "memory.json") == expected
    report = await import_file(scope, io.BytesIO(zipped.getvalue()), as_name="ship-2", where="notes.af")
    assert (report.format, report.agents) == ("engram", ["ship-2"])


async def test_a_graph_line_repeated_is_stored_once_and_replace_starts_the_agent_afresh(scope: Scope) -> None:
    await agent_create(scope, "graph")
    await archival_memory_insert(scope, "An older note.", agent="graph")
    report = await import_file(scope, io.BytesIO(graph_lines(ADA, ADA, WORKS)), as_name="graph", replace=True)
    assert (report.passages, report.skipped) == (2, ["1 lines repeating an earlier line of the file"])
    assert [text for text, *_ in await passages_of(scope, "graph")] == [
        "Ada (person)\n- Likes night trains\n- Lives in Porto",
        "Ada works_at Acme",
    ]
