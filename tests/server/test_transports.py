"""The same end-to-end behaviour over every transport: in memory, stdio (`engram serve`) and HTTP."""

from __future__ import annotations

import json

import pytest
from mcp.client.client import Client
from mcp_types import TextResourceContents

from tests.conftest import call, call_error

pytestmark = pytest.mark.anyio


async def read_text(client: Client, uri: str) -> str:
    [contents] = (await client.read_resource(uri)).contents
    assert isinstance(contents, TextResourceContents)
    return contents.text


async def test_core_memory_edits_and_views(connection: Client) -> None:
    await call(connection, "agent_create", name="trip", human="Name: Ada")
    edited = await call(connection, "core_memory_append", agent="trip", label="human", content="Prefers trains.")
    assert edited["value"] == "Name: Ada\nPrefers trains." and edited["version"] == 2
    assert "Prefers trains." in await read_text(connection, "engram://agents/trip/memory")
    names = [agent["name"] for agent in json.loads(await read_text(connection, "engram://agents"))["agents"]]
    assert names == ["trip"]


async def test_archival_and_recall_memory_find_what_was_stored(connection: Client) -> None:
    await call(connection, "archival_memory_insert", content="The spare key is in the blue flowerpot.")
    hits = (await call(connection, "archival_memory_search", query="where is the spare key?"))["results"]
    assert hits[0]["content"] == "The spare key is in the blue flowerpot."
    await call(connection, "conversation_record", role="user", content="My gym locker is number 318.")
    found = (await call(connection, "conversation_search", query="locker 318"))["results"]
    assert found[0]["text"] == "My gym locker is number 318."


async def test_errors_reach_the_model_as_tool_errors(connection: Client) -> None:
    assert await call_error(connection, "core_memory_view", agent="ghost") == (
        "agent 'ghost' does not exist; call agent_list to see your agents, or agent_create to make it"
    )
    assert (
        await call_error(connection, "core_memory_replace", label="human", old_content="tea", new_content="coffee")
        == "block 'human' has no text 'tea'; call core_memory_view to see its current value"
    )
