"""Engram over HTTP as a team runs it: tokens, isolation between principals, transport checks, load."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextResourceContents
from starlette.types import ASGIApp, Message

from engram.server.cli import main
from engram.server.http import build_http_app
from engram.server.settings import load_settings
from tests.conftest import call, call_error, engram_http, http_client

pytestmark = pytest.mark.anyio

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
TOKENS = {"ENGRAM_TOKENS": f"alice={ALICE},bob={BOB}"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
IN_PROCESS = "http://127.0.0.1:8283"  # the app in this process, reached through httpx's ASGI transport


@pytest.fixture
async def team(database_url: str) -> AsyncIterator[str]:
    """An HTTP server with tokens for alice and bob (from settings)."""
    async with engram_http(database_url, environment=TOKENS) as base_url:
        yield base_url


async def post_initialize(base_url: str, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient() as http:
        return await http.post(f"{base_url}/mcp", json=INITIALIZE, headers=MCP_HEADERS | headers)


async def read_text(client: Client, uri: str) -> str:
    [contents] = (await client.read_resource(uri)).contents
    assert isinstance(contents, TextResourceContents)
    return contents.text


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan as uvicorn does: startup before the block, shutdown after it."""
    to_app, app_receives = anyio.create_memory_object_stream[Message](2)
    app_sends, from_app = anyio.create_memory_object_stream[Message](2)

    async def run() -> None:
        async with app_receives, app_sends:
            await app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, app_receives.receive, app_sends.send
            )

    async with anyio.create_task_group() as group, to_app, from_app:
        group.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        with anyio.fail_after(60):
            assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            with anyio.fail_after(60):
                assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


@pytest.fixture
async def team_app(database_url: str, tmp_path: Path) -> AsyncIterator[ASGIApp]:
    """The HTTP app `engram serve --transport http` runs, in this process (stateless, so that every response
    ends and httpx's ASGI transport can hand it over), with tokens for alice and bob from settings."""
    settings = load_settings(
        overrides={
            "database_url": database_url,
            "data_dir": str(tmp_path),
            "http_stateless": True,
            "tokens": {"alice": ALICE, "bob": BOB},
            "tool_profile": "full",
        },
        environ={},
    )
    app = build_http_app(settings, require_tokens=True)
    async with lifespan(app):
        yield app


def asgi_http(app: ASGIApp, token: str | None = None) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=IN_PROCESS, headers=headers)


async def initialize_in_process(app: ASGIApp, headers: dict[str, str]) -> httpx2.Response:
    async with asgi_http(app) as http:
        return await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS | headers)


@asynccontextmanager
async def in_process_client(app: ASGIApp, token: str) -> AsyncIterator[Client]:
    async with (
        asgi_http(app, token) as http,
        Client(streamable_http_client(f"{IN_PROCESS}/mcp", http_client=http)) as connected,
    ):
        yield connected


async def test_the_token_check_answers_401_with_the_reason_and_lets_a_good_token_and_health_through(
    team_app: ASGIApp,
) -> None:
    missing = await initialize_in_process(team_app, {})
    assert (missing.status_code, missing.json()) == (
        401,
        {"error": "unauthorized", "detail": "missing bearer token: send 'Authorization: Bearer <token>'"},
    )
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="engram"'
    assert (await initialize_in_process(team_app, {"Authorization": f"Basic {ALICE}"})).status_code == 401
    wrong = await initialize_in_process(team_app, {"Authorization": "Bearer not-a-token"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid or revoked token")
    assert "not-a-token" not in wrong.text
    assert (await initialize_in_process(team_app, {"Authorization": f"Bearer {ALICE}"})).status_code == 200
    async with asgi_http(team_app) as http:
        health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["schema_current"] is True


async def test_a_principal_sees_only_its_own_agents_in_process(team_app: ASGIApp) -> None:
    async with in_process_client(team_app, ALICE) as alice:
        await call(alice, "agent_create", name="diary", human="Alice's secret: 4471")
        assert [agent["name"] for agent in (await call(alice, "agent_list"))["agents"]] == ["diary"]
    async with in_process_client(team_app, BOB) as bob:
        assert (await call(bob, "agent_list"))["agents"] == []
        assert await call_error(bob, "core_memory_view", agent="diary") == (
            "agent 'diary' does not exist; call agent_list to see your agents, or agent_create to make it"
        )


async def test_a_token_revoked_while_serving_is_refused_at_its_next_request(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await engram("tokens", "create", "laptop", "--principal", "carol", "--database-url", database_url) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    settings = load_settings(
        overrides={"database_url": database_url, "data_dir": str(tmp_path), "http_stateless": True}, environ={}
    )
    app = build_http_app(settings, require_tokens=True)
    async with lifespan(app):
        async with in_process_client(app, token) as carol:
            await call(carol, "core_memory_append", label="human", content="Carol writes.")
        assert await engram("tokens", "revoke", "laptop", "--database-url", database_url) == 0
        refused = await initialize_in_process(app, {"Authorization": f"Bearer {token}"})
    assert (refused.status_code, refused.json()["detail"]) == (401, "invalid or revoked token")


async def test_requests_without_a_valid_token_get_401_and_health_stays_open(team: str) -> None:
    assert (await post_initialize(team, {})).status_code == 401
    wrong = await post_initialize(team, {"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid or revoked token"
    assert "not-a-token" not in wrong.text
    assert (await post_initialize(team, {"Authorization": f"Bearer {ALICE}"})).status_code == 200
    async with httpx2.AsyncClient() as http:
        health = await http.get(f"{team}/healthz")
    assert health.status_code == 200 and health.json()["schema_current"] is True


async def test_a_disallowed_origin_or_host_is_refused(team: str) -> None:
    token = {"Authorization": f"Bearer {ALICE}"}
    assert (await post_initialize(team, token | {"Origin": "http://evil.example"})).status_code == 403
    assert (await post_initialize(team, token | {"Host": "evil.example"})).status_code in (400, 421)
    assert (await post_initialize(team, token | {"Origin": "http://localhost:3000"})).status_code == 200


async def engram(*args: str) -> int:
    """The `engram` command, in a worker thread (it runs its own event loop)."""
    return await anyio.to_thread.run_sync(main, list(args))


async def test_a_revoked_token_stops_working_at_once(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await engram("tokens", "create", "laptop", "--principal", "carol", "--database-url", database_url) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("engram_")
    async with engram_http(database_url) as base_url:
        async with http_client(base_url, token) as client:
            await call(client, "core_memory_append", label="human", content="Carol writes.")
        assert await engram("tokens", "revoke", "laptop", "--database-url", database_url) == 0
        assert (await post_initialize(base_url, {"Authorization": f"Bearer {token}"})).status_code == 401
    assert await engram("tokens", "list", "--database-url", database_url) == 0
    listed = capsys.readouterr().out
    assert "laptop\tprincipal carol" in listed and "revoked" in listed and token not in listed


async def test_one_principal_can_neither_read_nor_change_anothers_memory(team: str) -> None:
    async with http_client(team, ALICE) as alice:
        await call(alice, "agent_create", name="diary", human="Alice's secret: 4471")
        passage = await call(alice, "archival_memory_insert", agent="diary", content="Alice's bank PIN hint.")
        await call(alice, "conversation_record", agent="diary", role="user", content="Alice's private chat.")
        before = await read_text(alice, "engram://agents/diary/memory")

    async with http_client(team, BOB) as bob:
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("core_memory_view", {"agent": "diary"}),
            ("core_memory_append", {"agent": "diary", "label": "human", "content": "bob was here"}),
            ("core_memory_replace", {"agent": "diary", "label": "human", "old_content": "4471", "new_content": "x"}),
            ("memory_insert", {"agent": "diary", "label": "human", "new_str": "bob"}),
            ("memory_replace", {"agent": "diary", "label": "human", "old_str": "4471", "new_str": "x"}),
            ("memory_rethink", {"agent": "diary", "label": "human", "new_memory": "bob"}),
            ("archival_memory_insert", {"agent": "diary", "content": "bob's note"}),
            ("archival_memory_search", {"agent": "diary", "query": "PIN"}),
            ("archival_memory_delete", {"agent": "diary", "id": passage["id"]}),
            ("conversation_record", {"agent": "diary", "role": "user", "content": "bob"}),
            ("conversation_search", {"agent": "diary", "query": "private"}),
            ("agent_delete", {"name": "diary"}),
        ]
        for tool, arguments in attempts:
            assert (await call_error(bob, tool, **arguments)).startswith("agent 'diary' does not exist; "), tool
        # bob's own default agent cannot reach alice's passage by id either
        assert await call_error(bob, "archival_memory_delete", id=passage["id"]) == (
            f"agent 'default' has no archival passage '{passage['id']}'; archival_memory_search shows passage ids"
        )
        assert (await call(bob, "archival_memory_search", query="Alice's bank PIN hint"))["results"] == []
        assert (await call(bob, "conversation_search", query="Alice's private chat"))["results"] == []
        for uri in ("engram://agents/diary", "engram://agents/diary/memory", "engram://agents/diary/archival",
                    "engram://agents/diary/conversations", "engram://agents/diary/blocks/human"):  # fmt: skip
            with pytest.raises(Exception, match="agent 'diary' does not exist"):
                await bob.read_resource(uri)
        assert [a["name"] for a in json.loads(await read_text(bob, "engram://agents"))["agents"]] == ["default"]
        await call(bob, "agent_create", name="diary", human="Bob's own diary")  # names are per principal

    async with http_client(team, ALICE) as alice:
        assert await read_text(alice, "engram://agents/diary/memory") == before
        found = await call(alice, "archival_memory_search", agent="diary", query="PIN hint")
        assert [hit["id"] for hit in found["results"]] == [passage["id"]]
        recalled = await call(alice, "conversation_search", agent="diary", query="private chat")
        assert [hit["text"] for hit in recalled["results"]] == ["Alice's private chat."]


async def test_legacy_sse_clients_are_served_with_their_token(team: str) -> None:
    async with Client(sse_client(f"{team}/sse", headers={"Authorization": f"Bearer {ALICE}"})) as client:
        await call(client, "core_memory_append", label="human", content="Over SSE.")
        assert "Over SSE." in (await call(client, "core_memory_view"))["text"]
    async with http_client(team, BOB) as bob:
        assert "Over SSE." not in (await call(bob, "core_memory_view"))["text"]


async def test_many_clients_on_two_instances_lose_and_duplicate_no_write(database_url: str) -> None:
    """Twelve concurrent clients, 360 writes, two stateless instances sharing one database."""
    async with (
        engram_http(database_url, environment=TOKENS, args=["--stateless"]) as first,
        engram_http(database_url, environment=TOKENS, args=["--stateless"]) as second,
    ):

        async def write(base_url: str, number: int) -> None:
            async with http_client(base_url, ALICE) as client:
                for index in range(30):
                    await call(client, "conversation_record", role="user", content=f"c{number}-m{index}",
                               conversation="load")  # fmt: skip

        with anyio.fail_after(300):
            async with anyio.create_task_group() as group:
                for number in range(12):
                    group.start_soon(write, first if number % 2 else second, number)
        async with http_client(first, ALICE) as client:
            transcript: list[dict[str, Any]] = []
            page: int | None = 1
            while page:
                result = json.loads(await read_text(client, f"engram://agents/default/conversations/load?page={page}"))
                transcript += result["messages"]
                page = result["next_page"]
    assert [message["ordinal"] for message in transcript] == list(range(1, 361))
    assert sorted(message["text"] for message in transcript) == sorted(
        f"c{number}-m{index}" for number in range(12) for index in range(30)
    )


def test_serving_beyond_loopback_without_tokens_is_refused(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--transport", "http", "--host", "0.0.0.0", "--database-url", database_url]) == 1
    assert "refusing to serve HTTP on 0.0.0.0 without authentication" in capsys.readouterr().err


async def test_http_starts_and_stops_its_own_embedded_postgres_in_a_fresh_data_dir(
    database_url: str, tmp_path: Path
) -> None:
    embedded = {"ENGRAM_DATABASE_URL": "", "ENGRAM_DATA_DIR": str(tmp_path)}
    async with engram_http(database_url, environment=embedded) as base_url, http_client(base_url) as client:
        await call(client, "core_memory_append", label="human", content="Served from a fresh data dir.")
    assert (tmp_path / "pg" / "PG_VERSION").exists()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()  # stopped with the server (SIGTERM)
