"""`engram serve` as a host runs it: a subprocess over stdio, with its own embedded PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import TextResourceContents

from tests.conftest import MEMORY_TOOLS, call, engram_command, every_tool, minimal_environment

pytestmark = pytest.mark.anyio


def serve_environment(data_dir: Path) -> dict[str, str]:
    """What a host passes: a minimal environment, plus the data dir this test owns."""
    return {**minimal_environment(), "ENGRAM_DATA_DIR": str(data_dir)}


@asynccontextmanager
async def engram_serve(data_dir: Path, *args: str) -> AsyncIterator[Client]:
    parameters = StdioServerParameters(command=engram_command(), args=["serve", *args], env=serve_environment(data_dir))
    async with Client(parameters, mode="legacy") as client:
        yield client


async def test_engram_serve_offers_the_memory_tools_over_stdio(tmp_path: Path) -> None:
    async with engram_serve(tmp_path) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == MEMORY_TOOLS
        result = await call(client, "core_memory_append", label="human", content="Prefers dark mode.")
        assert result["value"] == "Prefers dark mode."  # the first fact replaces the 'human' placeholder


async def test_engram_serve_with_tools_full_offers_every_tool_over_stdio(tmp_path: Path) -> None:
    async with engram_serve(tmp_path, "--tools", "full") as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == every_tool()
        created = await call(client, "agent_create", name="notes")
    assert created["name"] == "notes"


async def test_archival_memory_over_stdio_with_the_shipped_embedding_model(tmp_path: Path) -> None:
    async with engram_serve(tmp_path) as client:
        stored = await call(client, "archival_memory_insert", content="Ada's bike lock code is 4-7-1-9.", tags=["home"])
        await call(client, "archival_memory_insert", content="The boiler was serviced in October.")
        hits = (await call(client, "archival_memory_search", query="how do I unlock the bicycle?"))["results"]
    assert hits[0]["id"] == stored["id"] and hits[0]["tags"] == ["home"]


async def test_memory_survives_a_server_restart(tmp_path: Path) -> None:
    async with engram_serve(tmp_path) as client:
        await call(client, "core_memory_append", label="human", content="Lives in Lisbon.")
    async with engram_serve(tmp_path) as client:
        view = (await call(client, "core_memory_view"))["text"]
    assert view.count("Lives in Lisbon.") == 1
    assert not (tmp_path / "pg" / "postmaster.pid").exists(), "the last server to exit must stop PostgreSQL"


async def test_two_server_processes_on_one_data_dir_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    per_process = 15
    async with engram_serve(tmp_path) as first, engram_serve(tmp_path) as second:

        async def append_all(client: Client, tag: str) -> None:
            for n in range(per_process):
                await call(client, "core_memory_append", label="human", content=f"{tag}-{n}")

        async with anyio.create_task_group() as group:
            group.start_soon(append_all, first, "a")
            group.start_soon(append_all, second, "b")
        seen_by_first = (await call(first, "core_memory_view"))["text"]
        seen_by_second = (await call(second, "core_memory_view"))["text"]
    assert seen_by_first == seen_by_second
    async with engram_serve(tmp_path) as client:
        after_restart = (await call(client, "core_memory_view"))["text"]
    assert after_restart == seen_by_first
    for tag in ("a", "b"):
        for n in range(per_process):
            assert after_restart.count(f"\n{tag}-{n}\n") == 1


def test_sigterm_with_stdin_still_open_exits_and_stops_postgres(tmp_path: Path) -> None:
    with subprocess.Popen(
        [engram_command(), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=serve_environment(tmp_path),
        text=True,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        messages = [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "0"},
                },
            },
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "core_memory_view", "arguments": {}},
            },
        ]
        process.stdin.write("".join(json.dumps(message) + "\n" for message in messages))
        process.stdin.flush()
        replies = [json.loads(process.stdout.readline()) for _ in range(2)]
        assert [reply["id"] for reply in replies] == [1, 2] and "<human>" in json.dumps(replies[1])
        assert (tmp_path / "pg" / "postmaster.pid").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        assert not (tmp_path / "pg" / "postmaster.pid").exists()


async def test_recall_memory_end_to_end_over_stdio(tmp_path: Path) -> None:
    """Messages from a hook command, an import and the tool, all found by a real client of `engram serve`."""
    environment = serve_environment(tmp_path)
    export = tmp_path / "history.jsonl"
    export.write_text(
        json.dumps({"conversation": "garden", "role": "user", "content": "The apple tree needs pruning in February."})
        + "\n"
    )
    for command in (
        [engram_command(), "record", "--conversation", "hooks", "My locker number at the gym is 318."],
        [engram_command(), "import", str(export)],
    ):
        with anyio.fail_after(180):
            finished = await anyio.run_process(command, env=environment, check=False)
        assert finished.returncode == 0, finished.stderr.decode()
    async with engram_serve(tmp_path) as client:
        await call(client, "conversation_record", role="user", content="I switched my phone plan to Vodafone.")
        locker = (await call(client, "conversation_search", query="locker 318"))["results"]
        fruit = (await call(client, "conversation_search", query="when should the fruit trees be cut back?"))["results"]
        transcript = await client.read_resource("engram://agents/default/conversations/hooks")
    assert locker[0]["text"] == "My locker number at the gym is 318." and locker[0]["conversation"] == "hooks"
    assert fruit[0]["text"] == "The apple tree needs pruning in February."
    [contents] = transcript.contents
    assert isinstance(contents, TextResourceContents)
    assert json.loads(contents.text)["messages"][0]["text"] == "My locker number at the gym is 318."
