"""Shared blocks through a real MCP client: made on their own or with an agent, attached to several agents,
detached and deleted, against a real PostgreSQL."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from mcp.client.client import Client

from engram.server.app import build_server
from engram.server.cli import main
from engram.server.settings import Settings
from tests.conftest import Invalid, call, call_error, says

pytestmark = pytest.mark.anyio

GHOST = "00000000-0000-4000-8000-000000000000"


async def listed(client: Client, **arguments: Any) -> dict[str, dict[str, Any]]:
    """block_list's blocks by id."""
    return {block["id"]: block for block in (await call(client, "block_list", **arguments))["blocks"]}


async def test_block_create_returns_the_block_with_its_id_attached_to_no_agent(client: Client) -> None:
    created = await call(
        client, "block_create", label="team", value="We ship on Fridays.", limit=100, description="Team facts"
    )
    assert created == {
        "id": created["id"],
        "label": "team",
        "description": "Team facts",
        "preview": "We ship on Fridays.",
        "chars_current": 19,
        "chars_limit": 100,
        "read_only": False,
        "version": 1,
        "standalone": True,
        "agents": [],
        "agent_count": 0,
    }
    assert (await listed(client))[created["id"]] == created


async def test_an_edit_through_one_agent_is_seen_by_every_agent_the_block_is_attached_to(client: Client) -> None:
    shared = await call(client, "block_create", label="team", value="We ship on Fridays.")
    await call(client, "agent_create", name="alpha")
    await call(client, "agent_create", name="beta")
    await call(client, "block_attach", agent="alpha", block=shared["id"])
    attached = await call(client, "block_attach", agent="beta", block=shared["id"])
    assert (attached["agents"], attached["agent_count"]) == (["alpha", "beta"], 2)

    edited = await call(client, "core_memory_append", agent="alpha", label="team", content="Reviews on Mondays.")
    assert edited["version"] == 2
    for agent in ("alpha", "beta"):
        view = (await call(client, "core_memory_view", agent=agent))["text"]
        assert "<team>" in view and "<value>\nWe ship on Fridays.\nReviews on Mondays.\n</value>" in view, agent
    await call(client, "memory_rethink", agent="beta", label="team", new_memory="We ship on Thursdays.")
    assert (await call(client, "core_memory_view", agent="alpha"))["text"].count("We ship on Thursdays.") == 1
    assert "We ship on Thursdays." not in (await call(client, "core_memory_view"))["text"]


async def test_a_shared_read_only_block_refuses_edits_through_every_agent(client: Client) -> None:
    rules = await call(client, "block_create", label="rules", value="Be kind.", read_only=True)
    for agent in ("alpha", "beta"):
        await call(client, "agent_create", name=agent)
        await call(client, "block_attach", agent=agent, block=rules["id"])
    for agent in ("alpha", "beta"):
        for tool, arguments in (
            ("core_memory_append", {"content": "x"}),
            ("memory_rethink", {"new_memory": "x"}),
            ("core_memory_undo", {}),
        ):
            message = await call_error(client, tool, agent=agent, label="rules", **arguments)
            assert message == f"block 'rules' of agent '{agent}' is read-only; it cannot be edited", (agent, tool)
    assert (await listed(client))[rules["id"]]["version"] == 1


async def test_a_block_made_with_an_agent_can_be_attached_to_another(client: Client) -> None:
    await call(client, "agent_create", name="alpha", blocks=[{"label": "project", "value": "Engram"}])
    await call(client, "agent_create", name="beta")
    [project] = (await call(client, "block_list", label="project"))["blocks"]
    assert (project["agents"], project["standalone"]) == (["alpha"], False)
    await call(client, "block_attach", agent="beta", block=project["id"])
    await call(client, "core_memory_append", agent="beta", label="project", content="MCP memory server")
    assert (
        "<value>\nEngram\nMCP memory server\n</value>"
        in (await call(client, "core_memory_view", agent="alpha"))["text"]
    )


async def test_an_agent_cannot_have_two_blocks_with_one_label(client: Client) -> None:
    await call(client, "agent_create", name="alpha")
    other = await call(client, "block_create", label="human", value="Someone else")
    [own] = [b for b in (await call(client, "block_list", label="human"))["blocks"] if b["agents"] == ["alpha"]]
    message = await call_error(client, "block_attach", agent="alpha", block=other["id"])
    assert message == (
        f"agent 'alpha' already has a block 'human' (id {own['id']}); an agent has one block per label: detach "
        "that one first with block_detach"
    )
    await call(client, "block_detach", agent="alpha", block=own["id"])
    attached = await call(client, "block_attach", agent="alpha", block=other["id"])
    assert attached["agents"] == ["alpha"]
    assert "<value>\nSomeone else\n</value>" in (await call(client, "core_memory_view", agent="alpha"))["text"]


async def test_attaching_a_block_an_agent_already_has_changes_nothing(client: Client) -> None:
    team = await call(client, "block_create", label="team")
    await call(client, "agent_create", name="alpha")
    first = await call(client, "block_attach", agent="alpha", block=team["id"])
    again = await call(client, "block_attach", agent="alpha", block=team["id"])
    assert first == again and again["agents"] == ["alpha"]
    assert (await call(client, "core_memory_view", agent="alpha"))["text"].count("<team>") == 1


async def test_an_attached_block_comes_after_the_agents_other_blocks(client: Client) -> None:
    team = await call(client, "block_create", label="aaa-team")
    await call(client, "agent_create", name="alpha")
    await call(client, "block_attach", agent="alpha", block=team["id"])
    view = (await call(client, "core_memory_view", agent="alpha"))["text"]
    assert view.index("<persona>") < view.index("<human>") < view.index("<aaa-team>")


async def test_detach_keeps_the_block_and_its_other_agents(client: Client) -> None:
    team = await call(client, "block_create", label="team", value="Shared")
    for agent in ("alpha", "beta"):
        await call(client, "agent_create", name=agent)
        await call(client, "block_attach", agent=agent, block=team["id"])
    detached = await call(client, "block_detach", agent="alpha", block=team["id"])
    assert detached["agents"] == ["beta"]
    assert "<team>" not in (await call(client, "core_memory_view", agent="alpha"))["text"]
    assert "<team>" in (await call(client, "core_memory_view", agent="beta"))["text"]
    assert await call_error(client, "block_detach", agent="alpha", block=team["id"]) == (
        f"block 'team' ({team['id']}) is not attached to agent 'alpha'; call block_list to see which agents it is "
        "attached to"
    )
    assert await call_error(client, "core_memory_append", agent="alpha", label="team", content="x") == (
        "agent 'alpha' has no block 'team'; its blocks are: 'persona', 'human'"
    )
    await call(client, "block_detach", agent="beta", block=team["id"])
    assert (await listed(client))[team["id"]]["agents"] == []


async def test_block_delete_detaches_it_from_every_agent_and_removes_it(client: Client) -> None:
    team = await call(client, "block_create", label="team", value="Shared")
    for agent in ("beta", "alpha"):
        await call(client, "agent_create", name=agent)
        await call(client, "block_attach", agent=agent, block=team["id"])
    await call(client, "core_memory_append", agent="alpha", label="team", content="more")
    deleted = await call(client, "block_delete", block=team["id"])
    assert deleted == {"id": team["id"], "label": "team", "detached_from": ["alpha", "beta"]}
    for agent in ("alpha", "beta"):
        assert "<team>" not in (await call(client, "core_memory_view", agent=agent))["text"]
    assert team["id"] not in await listed(client)
    assert await call_error(client, "block_delete", block=team["id"]) == (
        f"block {team['id']} does not exist; call block_list to see your blocks"
    )


async def test_agent_delete_keeps_standalone_blocks_and_blocks_other_agents_use(client: Client) -> None:
    await call(client, "agent_create", name="alpha", blocks=[{"label": "project", "value": "Engram"}])
    await call(client, "agent_create", name="beta")
    team = await call(client, "block_create", label="team", value="Shared")
    loose = await call(client, "block_create", label="loose", value="Attached to nothing")
    await call(client, "block_attach", agent="alpha", block=team["id"])
    project = (await call(client, "block_list", label="project"))["blocks"][0]
    await call(client, "block_attach", agent="beta", block=project["id"])

    assert await call(client, "agent_delete", name="alpha") == {"name": "alpha", "blocks_deleted": 2}
    remaining = await listed(client)
    assert remaining[team["id"]]["agents"] == [] and remaining[loose["id"]]["agents"] == []
    assert remaining[project["id"]]["agents"] == ["beta"]
    assert sorted(block["label"] for block in remaining.values()) == ["human", "loose", "persona", "project", "team"]

    assert await call(client, "agent_delete", name="beta") == {"name": "beta", "blocks_deleted": 3}
    assert sorted(block["label"] for block in (await listed(client)).values()) == ["loose", "team"]


async def test_a_block_is_named_by_its_label_when_no_other_block_has_it(client: Client) -> None:
    team = await call(client, "block_create", label="team", value="Shared")
    await call(client, "agent_create", name="alpha")
    assert (await call(client, "block_attach", agent="alpha", block="team"))["id"] == team["id"]
    [alpha_human] = (await call(client, "block_list", label="human"))["blocks"]
    await call(client, "core_memory_view")  # the default agent, with a second 'human' block
    [default_human] = [
        b for b in (await call(client, "block_list", label="human"))["blocks"] if b["id"] != alpha_human["id"]
    ]
    assert await call_error(client, "block_detach", agent="alpha", block="human") == (
        f"several of your blocks are labelled 'human': {alpha_human['id']} (attached to 'alpha'); "
        f"{default_human['id']} (attached to 'default'); name the block by its id"
    )
    assert (await call(client, "block_detach", agent="alpha", block="team"))["agents"] == []


async def test_an_ambiguous_label_names_a_few_of_its_blocks_and_where_they_are(client: Client) -> None:
    notes = [await call(client, "block_create", label="note", value=str(n)) for n in range(6)]
    for agent in ("a1", "a2", "a3", "a4"):
        await call(client, "agent_create", name=agent)
        await call(client, "block_attach", agent=agent, block=notes[0]["id"])
    unattached = "; ".join(f"{block['id']} (attached to no agent)" for block in notes[1:5])
    assert await call_error(client, "block_delete", block="note") == (
        f"several of your blocks are labelled 'note': {notes[0]['id']} (attached to 'a1', 'a2', 'a3' and 1 more); "
        f"{unattached}; …; name the block by its id"
    )


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (
            "block_attach",
            {"agent": "alpha", "block": GHOST},
            f"block {GHOST} does not exist; call block_list to see your blocks",
        ),
        (
            "block_delete",
            {"block": "nothing-here"},
            "you have no block labelled 'nothing-here'; call block_list to see your blocks",
        ),
        (
            "block_detach",
            {"agent": "alpha", "block": "not a block!"},
            "'not a block!' is neither a block id nor a block label; call block_list to see your blocks",
        ),
        (
            "block_attach",
            {"agent": "ghost", "block": GHOST},
            "agent 'ghost' does not exist; call agent_list to see your agents, or agent_create to make it",
        ),
        (
            "block_create",
            {"label": "small", "value": "twelve chars", "limit": 10},
            "block 'small' starts with 12 characters, over its limit of 10; shorten the value or raise the block's "
            "limit",
        ),
        (
            "block_create",
            {"label": "bad label!"},
            "block label 'bad label!' is not valid: use 1-50 letters, digits, '_', '.' or '-' (e.g. 'human')",
        ),
        (
            "block_create",
            {"label": "nul", "value": "a\x00b"},
            "'value' contains a NUL character (\\x00), which cannot be stored; remove it",
        ),
        ("block_create", {"label": "zero", "limit": 0}, "'limit' must be a whole number from 1 to 1000000"),
        ("block_list", {"page_size": 101}, "'page_size' must be a whole number from 1 to 100"),
    ],
)
async def test_bad_block_calls_get_a_clear_error_and_change_nothing(
    client: Client, tool: str, arguments: dict[str, Any], expected: str | Invalid
) -> None:
    await call(client, "agent_create", name="alpha")
    before = await call(client, "block_list")
    message = await call_error(client, tool, **arguments)
    assert says(message, expected), message
    assert await call(client, "block_list") == before


async def test_block_list_pages_by_label_and_filters(client: Client) -> None:
    for label in ("delta", "alpha", "charlie", "bravo"):
        await call(client, "block_create", label=label)
    first = await call(client, "block_list", page_size=3)
    assert [b["label"] for b in first["blocks"]] == ["alpha", "bravo", "charlie"]
    assert (first["total"], first["next_page"]) == (4, 2)
    last = await call(client, "block_list", page=2, page_size=3)
    assert [b["label"] for b in last["blocks"]] == ["delta"] and last["next_page"] is None
    only = await call(client, "block_list", label="bravo")
    assert [b["label"] for b in only["blocks"]] == ["bravo"] and only["total"] == 1


async def test_block_list_shortens_long_texts(client: Client) -> None:
    await call(client, "block_create", label="long", value="x" * 3000, description="d" * 1000)
    [block] = (await call(client, "block_list"))["blocks"]
    assert block["preview"] == "x" * 199 + "…" and block["description"] == "d" * 199 + "…"
    assert block["chars_current"] == 3000
    [narrow] = (await call(client, "block_list", page_size=100))["blocks"]
    assert len(narrow["preview"]) == 40


async def test_another_principals_blocks_cannot_be_seen_or_attached(
    client: Client, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [
        "blocks",
        "create",
        "secret",
        "--value",
        "Alice's",
        "--principal",
        "alice",
        "--database-url",
        database_url,
    ]
    assert await anyio.to_thread.run_sync(main, command) == 0  # the CLI runs its own event loop
    alice_block = capsys.readouterr().out.split()[-1]
    assert await call(client, "block_list") == {"blocks": [], "total": 0, "page": 1, "page_size": 20, "next_page": None}
    await call(client, "agent_create", name="mine")
    for tool, arguments in (
        ("block_attach", {"agent": "mine", "block": alice_block}),
        ("block_delete", {"block": alice_block}),
    ):
        assert await call_error(client, tool, **arguments) == (
            f"block {alice_block} does not exist; call block_list to see your blocks"
        )
    assert await call_error(client, "block_attach", agent="mine", block="secret") == (
        "you have no block labelled 'secret'; call block_list to see your blocks"
    )


async def test_concurrent_edits_through_agents_sharing_a_block_keep_every_line(settings: Settings) -> None:
    agents, edits = ("alpha", "beta", "gamma"), 15
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(build_server(settings))) for _ in agents]
        team = await call(clients[0], "block_create", label="team")
        for agent in agents:
            await call(clients[0], "agent_create", name=agent)
            await call(clients[0], "block_attach", agent=agent, block=team["id"])

        async def append_all(agent: str, client: Client) -> None:
            for n in range(edits):
                await call(client, "core_memory_append", agent=agent, label="team", content=f"{agent}-{n}")

        async with anyio.create_task_group() as group:
            for agent, client in zip(agents, clients, strict=True):
                group.start_soon(append_all, agent, client)
        final = await call(clients[0], "memory_insert", agent="gamma", label="team", new_str="end")
        history = await call(clients[0], "core_memory_history", agent="beta", label="team", limit=50)
    assert final["version"] == 1 + len(agents) * edits + 1
    assert [v["version"] for v in history["versions"]] == list(range(final["version"], 0, -1))
    lines = final["value"].split("\n")
    assert sorted(lines[:-1]) == sorted(f"{agent}-{n}" for agent in agents for n in range(edits))


async def test_two_blocks_with_one_label_racing_onto_one_agent_attach_only_one(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(build_server(settings))) for _ in range(2)]
        await call(clients[0], "agent_create", name="alpha")
        blocks = [await call(clients[0], "block_create", label="team", value=f"version {n}") for n in range(2)]
        results: list[bool] = []

        async def attach(client: Client, block: dict[str, Any]) -> None:
            outcome = await client.call_tool("block_attach", {"agent": "alpha", "block": block["id"]})
            results.append(not outcome.is_error)

        async with anyio.create_task_group() as group:
            for client, block in zip(clients, blocks, strict=True):
                group.start_soon(attach, client, block)
        view = (await call(clients[0], "core_memory_view", agent="alpha"))["text"]
    assert sorted(results) == [False, True]
    assert view.count("<team>") == 1
