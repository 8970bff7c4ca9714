"""Several clients (several host windows) editing one store at once lose nothing and duplicate nothing."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest
from mcp.client.client import Client

from engram.server.app import build_server
from engram.server.settings import Settings
from tests.conftest import call

pytestmark = pytest.mark.anyio

CLIENTS = 4
APPENDS_PER_CLIENT = 25


async def test_concurrent_appends_from_several_clients_keep_every_line(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(build_server(settings))) for _ in range(CLIENTS)]
        await call(clients[0], "agent_create", name="shared", human="")

        async def append_all(index: int, client: Client) -> None:
            for n in range(APPENDS_PER_CLIENT):
                await call(client, "core_memory_append", agent="shared", label="human", content=f"c{index}-n{n}")

        async with anyio.create_task_group() as group:
            for index, client in enumerate(clients):
                group.start_soon(append_all, index, client)

        final = await call(clients[0], "memory_insert", agent="shared", label="human", new_str="end")
    lines = final["value"].split("\n")
    expected = {f"c{i}-n{n}" for i in range(CLIENTS) for n in range(APPENDS_PER_CLIENT)}
    assert sorted(lines[:-1]) == sorted(expected)  # every append present exactly once
    assert final["version"] == 1 + CLIENTS * APPENDS_PER_CLIENT + 1


async def test_clients_racing_to_first_use_create_one_default_agent(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(build_server(settings))) for _ in range(CLIENTS)]
        views: list[str] = []

        async def first_use(client: Client) -> None:
            views.append((await call(client, "core_memory_view"))["text"])

        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(first_use, client)
        agents = await call(clients[0], "agent_list")
    assert [a["name"] for a in agents["agents"]] == ["default"]
    assert len(set(views)) == 1 and views[0].count("<human>") == 1
