"""Agent management through an MCP client: the built-in agent's settings (system prompt, model, context
window) and tags at creation, agent_update of each of them and of the name, and what bad input is told."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from mcp.client.client import Client

from tests.conftest import Invalid, call, call_error, says

pytestmark = pytest.mark.anyio

PIRATE = "You are a pirate who keeps a ship's log in memory. Answer in pirate speech."


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads("".join(getattr(content, "text", "") for content in result.contents))


async def test_agent_create_keeps_every_setting_and_the_state_and_list_show_them(client: Client) -> None:
    created = await call(
        client,
        "agent_create",
        name="ship",
        description="The ship's log",
        system=PIRATE,
        model="openai/gpt-4o-mini",
        context_window=16000,
        tags=["sea", " log ", "sea"],
    )
    state = await read_json(client, "engram://agents/ship")
    assert state == created
    settings = {key: state[key] for key in ("name", "description", "system", "model", "context_window", "tags")}
    assert settings == {
        "name": "ship",
        "description": "The ship's log",
        "system": PIRATE,
        "model": "openai/gpt-4o-mini",
        "context_window": 16000,
        "tags": ["sea", "log"],
    }
    assert [block["label"] for block in state["blocks"]] == ["persona", "human"]
    [listed] = (await call(client, "agent_list"))["agents"]
    assert (listed["id"], listed["name"], listed["tags"]) == (state["id"], "ship", ["sea", "log"])
    assert (await read_json(client, "engram://agents"))["agents"] == [listed]


async def test_an_agent_without_settings_uses_the_servers_and_says_so_with_nulls(client: Client) -> None:
    created = await call(client, "agent_create", name="plain")
    assert (created["system"], created["model"], created["context_window"], created["tags"]) == (None, None, None, [])
    default = await read_json(client, "engram://agents/default")
    assert (default["system"], default["model"], default["tags"]) == (None, None, [])


async def test_a_long_system_prompt_is_shortened_in_the_agents_state(client: Client) -> None:
    created = await call(client, "agent_create", name="verbose", system="x" * 5000)
    assert created["system"] == "x" * 999 + "…"


async def test_agent_update_changes_only_the_fields_it_is_given(client: Client) -> None:
    first = await call(
        client,
        "agent_create",
        name="ship",
        description="log",
        system=PIRATE,
        model="openai/gpt-4o-mini",
        context_window=16000,
        tags=["sea"],
    )
    settings = ("description", "system", "model", "context_window", "tags")

    def changed(state: dict[str, Any]) -> dict[str, Any]:
        return {key: state[key] for key in settings if state[key] != first[key]}

    steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"description": "The log"}, {"description": "The log"}),
        ({"system": "Speak plainly."}, {"description": "The log", "system": "Speak plainly."}),
        ({"model": "anthropic/claude-sonnet-4-5"}, {"model": "anthropic/claude-sonnet-4-5"}),
        ({"context_window": 200000}, {"context_window": 200000}),
        ({"tags": ["sea", "ledger"]}, {"tags": ["sea", "ledger"]}),
    ]
    expected: dict[str, Any] = {}
    for arguments, change in steps:
        expected |= change
        updated = await call(client, "agent_update", name="ship", **arguments)
        assert changed(updated) == expected, arguments
        assert updated["blocks"] == first["blocks"] and updated["id"] == first["id"]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(first["updated_at"])
    assert await read_json(client, "engram://agents/ship") == updated


async def test_empty_values_return_an_agent_to_the_server_defaults(client: Client) -> None:
    await call(
        client, "agent_create", name="ship", system=PIRATE, model="openai/gpt-4o-mini", context_window=16000, tags=["a"]
    )
    reset = await call(client, "agent_update", name="ship", system="", model="", context_window=0, tags=[])
    assert (reset["system"], reset["model"], reset["context_window"], reset["tags"]) == (None, None, None, [])


async def test_an_update_with_nothing_to_change_returns_the_agent_as_it_is(client: Client) -> None:
    created = await call(client, "agent_create", name="ship", tags=["sea"])
    assert await call(client, "agent_update", name="ship") == created


async def test_renaming_an_agent_keeps_its_memory_and_frees_the_old_name(client: Client) -> None:
    created = await call(client, "agent_create", name="old", human="Name: Ada", tags=["kept"])
    await call(client, "archival_memory_insert", agent="old", content="The boat is called Wanda.")
    renamed = await call(client, "agent_update", name="old", new_name="new")
    assert (renamed["id"], renamed["name"], renamed["tags"]) == (created["id"], "new", ["kept"])
    assert "Name: Ada" in (await call(client, "core_memory_view", agent="new"))["text"]
    found = await call(client, "archival_memory_search", agent="new", query="boat name")
    assert [hit["content"] for hit in found["results"]] == ["The boat is called Wanda."]
    assert await call_error(client, "core_memory_view", agent="old") == (
        "agent 'old' does not exist; call agent_list to see your agents, or agent_create to make it"
    )
    assert (await call(client, "agent_create", name="old"))["id"] != created["id"]


async def test_renaming_onto_a_taken_name_is_a_conflict_and_changes_nothing(client: Client) -> None:
    await call(client, "agent_create", name="first", tags=["one"])
    await call(client, "agent_create", name="second")
    message = await call_error(client, "agent_update", name="first", new_name="second", tags=["changed"])
    assert message == "agent 'second' already exists, so agent 'first' cannot take its name; pick another name"
    names = [(agent["name"], agent["tags"]) for agent in (await call(client, "agent_list"))["agents"]]
    assert names == [("first", ["one"]), ("second", [])]


async def test_renaming_an_agent_to_its_own_name_changes_nothing(client: Client) -> None:
    created = await call(client, "agent_create", name="same")
    assert await call(client, "agent_update", name="same", new_name="same") == created


async def test_renaming_the_default_agent_keeps_its_memory_and_the_next_call_makes_a_new_default(
    client: Client,
) -> None:
    await call(client, "core_memory_append", label="human", content="Likes tea.")
    await call(client, "agent_update", name="default", new_name="archive")
    assert "Likes tea." in (await call(client, "core_memory_view", agent="archive"))["text"]
    fresh = (await call(client, "core_memory_view"))["text"]
    assert '<memory_blocks agent="default">' in fresh and "Likes tea." not in fresh
    assert [agent["name"] for agent in (await call(client, "agent_list"))["agents"]] == ["archive", "default"]


TOO_MANY_TAGS = [f"t{n}" for n in range(21)]


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (
            "agent_update",
            {"name": "ghost", "tags": ["x"]},
            "agent 'ghost' does not exist; call agent_list to see your agents, or agent_create to make it",
        ),
        ("agent_create", {"name": "new", "tags": ["ok", " "]}, "tag ' ' is not valid: use 1-50 characters"),
        ("agent_update", {"name": "ship", "tags": ["x" * 51]}, f"tag '{'x' * 51}' is not valid: use 1-50 characters"),
        ("agent_create", {"name": "new", "tags": TOO_MANY_TAGS}, "21 tags given; use at most 20"),
        (
            "agent_create",
            {"name": "new", "context_window": 100},
            "context_window 100 is out of range: use 4096-10000000 tokens, or 0 for the server's default",
        ),
        (
            "agent_update",
            {"name": "ship", "context_window": 20_000_000},
            "context_window 20000000 is out of range: use 4096-10000000 tokens, or 0 for the server's default",
        ),
        (
            "agent_update",
            {"name": "ship", "model": "gpt 4o"},
            "model 'gpt 4o' is not valid: use a litellm model name (1-200 characters, no spaces), "
            "e.g. 'openai/gpt-4o-mini'",
        ),
        (
            "agent_update",
            {"name": "ship", "new_name": "a b"},
            "agent name 'a b' is not valid: use 1-100 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit",
        ),
        (
            "agent_update",
            {"name": "ship", "system": "a\x00b"},
            "'system' contains a NUL character (\\x00), which cannot be stored; remove it",
        ),
        (
            "agent_create",
            {"name": "new", "system": "x" * 100_001},
            "'system' is 100001 characters, over the maximum of 100000; send a shorter text",
        ),
        (
            "agent_update",
            {"name": "ship", "context_window": "big"},
            "'context_window' must be a whole number",
        ),
        (
            "agent_update",
            {"name": "ship", "description": "x" * 2001},
            "'description' is too long: at most 2000 characters",
        ),
    ],
)
async def test_bad_agent_settings_get_a_clear_error_and_change_nothing(
    client: Client, tool: str, arguments: dict[str, Any], expected: str | Invalid
) -> None:
    before = await call(client, "agent_create", name="ship", model="openai/gpt-4o-mini", tags=["sea"])
    message = await call_error(client, tool, **arguments)
    assert says(message, expected), message
    assert await read_json(client, "engram://agents/ship") == before
    assert [agent["name"] for agent in (await call(client, "agent_list"))["agents"]] == ["ship"]
