"""Over stdio, a line that is not a JSON-RPC message gets a JSON-RPC error, as over HTTP, not silence."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from tests.conftest import engram_command, minimal_environment

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


class RawStdio:
    """`engram serve` spoken to line by line, as a host's transport does."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._lines = TextReceiveStream(process.stdout)
        self._buffer = ""

    async def send_line(self, line: str) -> None:
        assert self._process.stdin is not None
        await self._process.stdin.send(line.encode("utf-8", "surrogatepass") + b"\n")

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_line(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        with anyio.fail_after(30):
            while "\n" not in self._buffer:
                self._buffer += await self._lines.receive()
        line, self._buffer = self._buffer.split("\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer


@asynccontextmanager
async def raw_engram(database_url: str) -> AsyncIterator[RawStdio]:
    environment = {**minimal_environment(), "ENGRAM_DATABASE_URL": database_url}
    process = await anyio.open_process([engram_command(), "serve"], env=environment, stderr=subprocess.DEVNULL)
    async with process:
        peer = RawStdio(process)
        await peer.send(INITIALIZE)
        assert (await peer.receive())["id"] == 1
        await peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        try:
            yield peer
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.fail_after(30):
                await process.wait()


async def test_a_line_that_is_not_json_gets_a_parse_error_and_the_server_goes_on(database_url: str) -> None:
    async with raw_engram(database_url) as peer:
        await peer.send_line("this is not json")
        answer = await peer.receive()
        await peer.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        pong = await peer.receive()
    assert answer["id"] is None and answer["error"]["code"] == -32700
    assert answer["error"]["message"].startswith("Parse error: ")
    assert pong == {"jsonrpc": "2.0", "id": 2, "result": {}}


async def test_a_lone_surrogate_from_a_truncated_emoji_gets_a_parse_error(database_url: str) -> None:
    async with raw_engram(database_url) as peer:
        await peer.send_line(
            '{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "core_memory_append", '
            '"arguments": {"label": "human", "content": "Loves \\ud83d"}}}'
        )
        answer = await peer.receive()
    assert answer["id"] is None and answer["error"]["code"] == -32700
    assert "surrogate" in answer["error"]["message"] or "escape" in answer["error"]["message"]


async def test_json_that_is_not_a_message_gets_invalid_request_with_its_id(database_url: str) -> None:
    async with raw_engram(database_url) as peer:
        await peer.send({"jsonrpc": "2.0", "id": 7, "params": {}})
        answer = await peer.receive()
    assert answer["id"] == 7 and answer["error"]["code"] == -32600
    assert answer["error"]["message"].startswith("Invalid Request: not a JSON-RPC message")


async def test_a_blank_line_is_not_answered(database_url: str) -> None:
    async with raw_engram(database_url) as peer:
        await peer.send_line("   ")
        await peer.send({"jsonrpc": "2.0", "id": 4, "method": "ping"})
        first = await peer.receive()
    assert first == {"jsonrpc": "2.0", "id": 4, "result": {}}
