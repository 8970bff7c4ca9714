"""Core memory through a real MCP client (in memory) against a real PostgreSQL."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import anyio
import pytest
from mcp.client.client import Client
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.app import build_server
from engram.server.settings import Settings
from tests.conftest import Invalid, call, call_error, says

pytestmark = pytest.mark.anyio


async def test_first_call_creates_the_default_agent_with_persona_and_human(client: Client) -> None:
    view = (await call(client, "core_memory_view"))["text"]
    assert '<memory_blocks agent="default">' in view
    assert "<persona>" in view and "<human>" in view
    assert "- chars_limit=5000" in view
    agents = await call(client, "agent_list")
    assert [a["name"] for a in agents["agents"]] == ["default"]


async def test_append_adds_a_line_and_reports_sizes(client: Client) -> None:
    await call(client, "memory_rethink", label="human", new_memory="Name: Ada")
    result = await call(client, "core_memory_append", label="human", content="Likes green tea.")
    assert result["value"] == "Name: Ada\nLikes green tea."
    assert result["chars_current"] == len("Name: Ada\nLikes green tea.")
    assert result["chars_limit"] == 5000
    assert result["version"] == 3


async def test_the_first_fact_appended_replaces_the_human_placeholder(client: Client) -> None:
    assert "Nothing is known about the user yet." in (await call(client, "core_memory_view"))["text"]
    result = await call(client, "core_memory_append", label="human", content="First fact.")
    assert result["value"] == "First fact."
    result = await call(client, "core_memory_append", label="human", content="Second fact.")
    assert result["value"] == "First fact.\nSecond fact."


async def test_the_first_line_inserted_replaces_the_human_placeholder(client: Client) -> None:
    result = await call(client, "memory_insert", label="human", new_str="Likes tea.", insert_line=0)
    assert result["value"] == "Likes tea."


async def test_an_empty_rethink_is_refused_and_the_block_kept(client: Client) -> None:
    await call(client, "memory_rethink", label="persona", new_memory="I keep notes.")
    refusal = await call_error(client, "memory_rethink", label="persona", new_memory=" ")
    assert refusal == (
        "'new_memory' is empty, which would erase block 'persona'; pass the block's complete new text (to remove "
        "text, use memory_replace with new_str '')"
    )
    assert "I keep notes." in (await call(client, "core_memory_view"))["text"]


async def test_core_memory_replace_replaces_every_occurrence_and_empty_deletes(client: Client) -> None:
    await call(client, "memory_rethink", label="human", new_memory="tea, tea and more tea")
    result = await call(client, "core_memory_replace", label="human", old_content="tea", new_content="coffee")
    assert result["value"] == "coffee, coffee and more coffee"
    result = await call(client, "core_memory_replace", label="human", old_content=" and more coffee", new_content="")
    assert result["value"] == "coffee, coffee"


async def test_replace_of_missing_text_names_the_block_and_changes_nothing(client: Client) -> None:
    before = await call(client, "memory_rethink", label="human", new_memory="Likes coffee")
    message = await call_error(client, "core_memory_replace", label="human", old_content="tea", new_content="x")
    assert message == "block 'human' has no text 'tea'; call core_memory_view to see its current value"
    after = await call(client, "memory_insert", label="human", new_str="probe", insert_line=0)
    assert after["version"] == before["version"] + 1  # no write happened in between


async def test_memory_insert_places_text_at_a_line(client: Client) -> None:
    await call(client, "memory_rethink", label="human", new_memory="one\nthree")
    assert (await call(client, "memory_insert", label="human", new_str="two", insert_line=1))[
        "value"
    ] == "one\ntwo\nthree"
    assert (await call(client, "memory_insert", label="human", new_str="zero", insert_line=0))["value"].startswith(
        "zero\none"
    )
    assert (await call(client, "memory_insert", label="human", new_str="four"))["value"].endswith("three\nfour")
    message = await call_error(client, "memory_insert", label="human", new_str="x", insert_line=9)
    assert message == (
        "insert_line 9 is past the end of block 'human', which has 5 lines; use a number from 0 to 5, or -1 for the end"
    )


async def test_memory_replace_needs_exactly_one_match(client: Client) -> None:
    await call(client, "memory_rethink", label="human", new_memory="likes tea\nowns a tea pot")
    message = await call_error(client, "memory_replace", label="human", old_str="tea", new_str="coffee")
    assert message == (
        "'tea' occurs 2 times in block 'human' (lines [1, 2]); include more surrounding text so it is unique, "
        "or use core_memory_replace to replace every occurrence"
    )
    result = await call(client, "memory_replace", label="human", old_str="likes tea", new_str="likes coffee")
    assert result["value"] == "likes coffee\nowns a tea pot"
    assert await call_error(client, "memory_replace", label="human", old_str="cocoa", new_str="x") == (
        "block 'human' has no text 'cocoa'; call core_memory_view to see its current value"
    )


async def test_append_past_the_limit_is_refused_with_both_sizes(client: Client) -> None:
    await call(client, "agent_create", name="small", blocks=[{"label": "notes", "value": "12345", "limit": 10}])
    message = await call_error(client, "core_memory_append", agent="small", label="notes", content="abcdef")
    assert message == (
        "block 'notes' would hold 12 characters, over its limit of 10 (it holds 5 now); shorten the text, or make "
        "room first with core_memory_replace or memory_rethink"
    )
    view = (await call(client, "core_memory_view", agent="small"))["text"]
    assert "<value>\n12345\n</value>" in view


async def test_read_only_blocks_refuse_every_edit(client: Client) -> None:
    await call(client, "agent_create", name="ro", blocks=[{"label": "rules", "value": "Be kind.", "read_only": True}])
    edits: list[tuple[str, dict[str, Any]]] = [
        ("core_memory_append", {"content": "x"}),
        ("core_memory_replace", {"old_content": "kind", "new_content": "mean"}),
        ("memory_insert", {"new_str": "x"}),
        ("memory_replace", {"old_str": "kind", "new_str": "mean"}),
        ("memory_rethink", {"new_memory": "x"}),
    ]
    for tool, arguments in edits:
        message = await call_error(client, tool, agent="ro", label="rules", **arguments)
        assert message == "block 'rules' of agent 'ro' is read-only; it cannot be edited", tool
    assert "<value>\nBe kind.\n</value>" in (await call(client, "core_memory_view", agent="ro"))["text"]
    assert "- read_only=true" in (await call(client, "core_memory_view", agent="ro"))["text"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"label": "human", "content": ""}, "'content' is empty; pass the text to use"),
        ({"label": "human", "content": "   "}, "'content' is empty; pass the text to use"),
        (
            {"label": "human", "content": "x" * 100_001},
            "'content' is 100001 characters, over the maximum of 100000; send a shorter text",
        ),
        (
            {"label": "human", "content": "a\x00b"},
            "'content' contains a NUL character (\\x00), which cannot be stored; remove it",
        ),
        ({"label": "nope", "content": "x"}, "agent 'default' has no block 'nope'; its blocks are: 'persona', 'human'"),
        (
            {"label": "bad label!", "content": "x"},
            "block label 'bad label!' is not valid: use 1-50 letters, digits, '_', '.' or '-' (e.g. 'human')",
        ),
        (
            {"label": "human", "content": "x", "agent": "ghost"},
            "agent 'ghost' does not exist; call agent_list to see your agents, or agent_create to make it",
        ),
        (
            {"label": "human", "content": "x", "agent": "../etc"},
            "agent name '../etc' is not valid: use 1-100 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit",
        ),
        ({"label": 123, "content": "x"}, "'label' must be text"),
        ({"content": "x"}, "'label' is required"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_changes_nothing(
    client: Client, arguments: dict[str, Any], expected: str | Invalid
) -> None:
    before = (await call(client, "core_memory_view"))["text"]
    message = await call_error(client, "core_memory_append", **arguments)
    assert says(message, expected)
    assert (await call(client, "core_memory_view"))["text"] == before


async def test_every_edit_writes_the_previous_value_to_history(client: Client, database_url: str) -> None:
    await call(client, "memory_rethink", label="human", new_memory="v2")
    await call(client, "core_memory_append", label="human", content="v3")
    await call(client, "core_memory_replace", label="human", old_content="v3", new_content="w3")
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT h.version, h.value, h.actor FROM block_history h JOIN blocks b ON b.id = h.block_id "
                "WHERE b.label = 'human' ORDER BY h.version"
            )
        ).all()
    engine.dispose()
    assert [(r.version, r.actor) for r in rows] == [
        (1, "memory_rethink"),
        (2, "core_memory_append"),
        (3, "core_memory_replace"),
    ]
    assert rows[1].value == "v2" and rows[2].value == "v2\nv3"


async def test_agents_keep_their_memories_apart(client: Client) -> None:
    await call(client, "agent_create", name="project-a", human="Works on A")
    await call(client, "agent_create", name="project-b", human="Works on B")
    await call(client, "core_memory_append", agent="project-a", label="human", content="Secret of A")
    assert "Secret of A" not in (await call(client, "core_memory_view", agent="project-b"))["text"]
    assert "Secret of A" not in (await call(client, "core_memory_view"))["text"]


async def test_agent_create_twice_is_a_conflict(client: Client) -> None:
    await call(client, "agent_create", name="twice")
    assert await call_error(client, "agent_create", name="twice") == (
        "agent 'twice' already exists; use it as it is, or pick another name"
    )


async def test_agent_delete_removes_its_blocks_and_the_name_is_free_again(client: Client) -> None:
    await call(client, "agent_create", name="gone", human="old")
    deleted = await call(client, "agent_delete", name="gone")
    assert deleted == {"name": "gone", "blocks_deleted": 2}
    assert await call_error(client, "core_memory_view", agent="gone") == (
        "agent 'gone' does not exist; call agent_list to see your agents, or agent_create to make it"
    )
    assert await call_error(client, "agent_delete", name="gone") == (
        "agent 'gone' does not exist; call agent_list to see your agents"
    )
    created = await call(client, "agent_create", name="gone")
    assert [b["label"] for b in created["blocks"]] == ["persona", "human"]


async def test_agent_list_pages(client: Client) -> None:
    for n in range(5):
        await call(client, "agent_create", name=f"agent-{n}")
    first = await call(client, "agent_list", page=1, page_size=2)
    assert [a["name"] for a in first["agents"]] == ["agent-0", "agent-1"]
    assert first["total"] == 5 and first["next_page"] == 2
    last = await call(client, "agent_list", page=3, page_size=2)
    assert [a["name"] for a in last["agents"]] == ["agent-4"] and last["next_page"] is None


async def test_history_lists_versions_newest_first_with_what_made_each(client: Client) -> None:
    await call(client, "agent_create", name="notes", human="v1")
    await call(client, "memory_rethink", agent="notes", label="human", new_memory="v2")
    await call(client, "core_memory_append", agent="notes", label="human", content="v3")
    await call(client, "core_memory_replace", agent="notes", label="human", old_content="v3", new_content="w3")
    history = await call(client, "core_memory_history", agent="notes", label="human")
    assert (history["agent"], history["label"], history["older"]) == ("notes", "human", 0)
    assert [(v["version"], v["value"], v["chars"], v["actor"]) for v in history["versions"]] == [
        (4, "v2\nw3", 5, "core_memory_replace"),
        (3, "v2\nv3", 5, "core_memory_append"),
        (2, "v2", 2, "memory_rethink"),
        (1, "v1", 2, "created"),
    ]
    moments = [datetime.fromisoformat(v["created_at"]) for v in history["versions"]]
    assert moments == sorted(moments, reverse=True)
    [block] = [b for b in (await call(client, "block_list", label="human"))["blocks"] if b["agents"] == ["notes"]]
    assert history["block_id"] == block["id"]


async def test_history_shows_the_newest_versions_and_counts_the_older_ones(client: Client) -> None:
    for n in range(2, 7):
        await call(client, "memory_rethink", label="human", new_memory=f"v{n}")
    history = await call(client, "core_memory_history", label="human", limit=2)
    assert [(v["version"], v["value"], v["actor"]) for v in history["versions"]] == [
        (6, "v6", "memory_rethink"),
        (5, "v5", "memory_rethink"),
    ]
    assert history["older"] == 4


async def test_history_shortens_long_values(client: Client) -> None:
    await call(client, "memory_rethink", label="human", new_memory="x" * 5000)
    [current, _first] = (await call(client, "core_memory_history", label="human"))["versions"]
    assert (current["value"], current["chars"]) == ("x" * 599 + "…", 5000)
    [current, _first] = (await call(client, "core_memory_history", label="human", limit=50))["versions"]
    assert current["value"] == "x" * 119 + "…"


async def test_undo_brings_back_the_previous_value_as_a_new_version_and_an_undo_can_be_undone(
    client: Client,
) -> None:
    await call(client, "memory_rethink", label="human", new_memory="Name: Ada")
    await call(client, "core_memory_append", label="human", content="Likes tea.")
    undone = await call(client, "core_memory_undo", label="human")
    assert (undone["value"], undone["version"]) == ("Name: Ada", 4)
    assert "<value>\nName: Ada\n</value>" in (await call(client, "core_memory_view"))["text"]
    redone = await call(client, "core_memory_undo", label="human")
    assert (redone["value"], redone["version"]) == ("Name: Ada\nLikes tea.", 5)
    history = await call(client, "core_memory_history", label="human", limit=3)
    assert [(v["version"], v["actor"]) for v in history["versions"]] == [
        (5, "core_memory_undo"),
        (4, "core_memory_undo"),
        (3, "core_memory_append"),
    ]


async def test_undo_with_nothing_to_undo_is_refused(client: Client) -> None:
    await call(client, "agent_create", name="fresh")
    assert await call_error(client, "core_memory_undo", agent="fresh", label="human") == (
        "block 'human' of agent 'fresh' has no earlier version to go back to (it is at version 1); nothing to undo"
    )
    assert await call_error(client, "core_memory_undo", agent="fresh", label="nope") == (
        "agent 'fresh' has no block 'nope'; its blocks are: 'persona', 'human'"
    )


async def test_undo_respects_the_blocks_limit(client: Client, database_url: str) -> None:
    await call(client, "agent_create", name="small", blocks=[{"label": "notes", "value": "a long first text"}])
    await call(client, "memory_rethink", agent="small", label="notes", new_memory="short")
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE blocks SET char_limit = 10 WHERE label = 'notes'"))
    engine.dispose()
    assert await call_error(client, "core_memory_undo", agent="small", label="notes") == (
        "version 1 of block 'notes' holds 17 characters, over the block's limit of 10, so it cannot come back as "
        "it was; rewrite the block with memory_rethink instead"
    )
    assert (await call(client, "core_memory_history", agent="small", label="notes"))["versions"][0]["version"] == 2


async def test_concurrent_undos_and_edits_each_make_one_version(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(build_server(settings))) for _ in range(3)]
        await call(clients[0], "memory_rethink", label="human", new_memory="start")

        async def work(index: int, client: Client) -> None:
            for n in range(8):
                if index == 0:
                    await call(client, "core_memory_append", label="human", content=f"line {n}")
                else:
                    await call(client, "core_memory_undo", label="human")

        async with anyio.create_task_group() as group:
            for index, client in enumerate(clients):
                group.start_soon(work, index, client)
        history = await call(clients[0], "core_memory_history", label="human", limit=50)
    versions = [v["version"] for v in history["versions"]]
    assert versions == list(range(2 + 3 * 8, 0, -1))


async def test_history_pruned_by_an_operator_says_what_it_no_longer_knows(client: Client, database_url: str) -> None:
    for n in range(2, 5):
        await call(client, "memory_rethink", label="human", new_memory=f"v{n}")
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM block_history WHERE version <= 2"))  # kept: version 3's text
    engine.dispose()
    history = await call(client, "core_memory_history", label="human")
    assert [(v["version"], v["value"], v["actor"], v["created_at"] is None) for v in history["versions"]] == [
        (4, "v4", "memory_rethink", False),
        (3, "v3", "unknown", True),
    ]
    assert (await call(client, "core_memory_undo", label="human"))["value"] == "v3"  # its text is still kept
