"""The REST API at /v1 against MCP over streamable HTTP: the same three operations, one server, one run.

Starts `engram serve --transport http --tools full` (a bearer token from `engram tokens create`, so every
request is authenticated) on one private embedded PostgreSQL holding 400 archival passages for one agent
and one agent per client, then measures, for each operation, transport and number of concurrent clients,
p50/p95 latency per call and the throughput of all clients together over `--seconds` of wall clock:

- block update: PATCH /v1/agents/{id}/core-memory/blocks/human {"value": ...}  vs  memory_rethink label=human
  (each client rewrites its own agent's block);
- archival search: GET /v1/agents/{id}/archival-memory/search?query=...  vs  archival_memory_search (one
  agent's 400 passages, hybrid search, query embedding included);
- agent list: GET /v1/agents/?limit=50  vs  agent_list (REST answers each agent's whole state, blocks
  included; MCP answers names and descriptions).

REST goes through an httpx2.AsyncClient (the HTTP client the MCP SDK itself uses), MCP through the SDK's
streamable HTTP client; each simulated client has its own connection (and MCP session). Prints a Markdown
table.

    python -m bench.rest [--seconds 5] [--clients 1,16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bench import corpus
from bench.archival import ms
from bench.http_load import PRINCIPAL, answers, engram
from engram.server.runtime import open_runtime
from engram.server.settings import load_settings
from engram.storage.embedded import release, start_embedded
from engram.tools.memory import archival
from engram.tools.memory.agents import agent_create

PASSAGES = 400
SEARCH_AGENT = "bench-search"
OPERATIONS = ("block update", "archival search", "agent list")

RestCall = Callable[[httpx2.AsyncClient, int, int], Awaitable[None]]  # (connection, client number, call index)
McpCall = Callable[[Client, int, int], Awaitable[None]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def prepare(data_dir: str, clients: int) -> dict[str, str]:
    """One agent per client (for block updates) and one holding the passages searched; their Letta-style ids
    ("agent-<uuid>") by name."""
    settings = load_settings(overrides={"data_dir": data_dir}, environ={})
    ids: dict[str, str] = {}
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope(PRINCIPAL)
        for name in [SEARCH_AGENT, *(f"bench-{number}" for number in range(clients))]:
            ids[name] = f"agent-{(await agent_create(scope, name)).id}"
        for text in corpus.passages(PASSAGES):
            await archival.archival_memory_insert(scope, text, agent=SEARCH_AGENT)
    return ids


async def run_cell(
    connect: Callable[[], Any], clients: int, seconds: float, call: Callable[[Any, int, int], Awaitable[None]]
) -> dict[str, float]:
    """`clients` concurrent clients calling as fast as they are answered for `seconds` after one warm-up call
    each; p50/p95 of every call and the calls per second of all of them together."""
    samples: list[float] = []
    ready: list[int] = []
    go = anyio.Event()
    ended: list[float] = []
    deadline = [0.0]

    async def one(number: int) -> None:
        async with connect() as client:
            await call(client, number, -1)  # warm-up: the connection, the session, the model
            ready.append(number)
            if len(ready) == clients:
                deadline[0] = time.perf_counter() + seconds
                go.set()
            await go.wait()  # every client starts its timed calls together
            index = 0
            while time.perf_counter() < deadline[0]:
                start = time.perf_counter()
                await call(client, number, index)
                samples.append(time.perf_counter() - start)
                index += 1
            ended.append(time.perf_counter())

    async with anyio.create_task_group() as group:
        for number in range(clients):
            group.start_soon(one, number)
        await go.wait()
        started = time.perf_counter()
    return ms(samples) | {"calls_per_second": round(len(samples) / (max(ended) - started), 1)}


def rest_calls(ids: dict[str, str], queries: list[str]) -> dict[str, RestCall]:
    async def block_update(http: httpx2.AsyncClient, number: int, index: int) -> None:
        agent_id = ids[f"bench-{number}"]
        reply = await http.patch(
            f"/v1/agents/{agent_id}/core-memory/blocks/human", json={"value": f"The user, revision {index}."}
        )
        reply.raise_for_status()

    async def search(http: httpx2.AsyncClient, number: int, index: int) -> None:
        reply = await http.get(
            f"/v1/agents/{ids[SEARCH_AGENT]}/archival-memory/search",
            params={"query": queries[(number * 7 + index) % len(queries)]},
        )
        reply.raise_for_status()
        assert reply.json()["count"] > 0

    async def agent_list(http: httpx2.AsyncClient, _number: int, _index: int) -> None:
        reply = await http.get("/v1/agents/", params={"limit": 50})
        reply.raise_for_status()
        assert len(reply.json()) >= len(ids)

    return dict(zip(OPERATIONS, (block_update, search, agent_list), strict=True))


def mcp_calls(queries: list[str]) -> dict[str, McpCall]:
    def tool(name: str, arguments: Callable[[int, int], dict[str, Any]]) -> McpCall:
        async def call(client: Client, number: int, index: int) -> None:
            reply = await client.call_tool(name, arguments(number, index))
            assert not reply.is_error, reply.content

        return call

    return {
        "block update": tool(
            "memory_rethink",
            lambda number, index: {
                "agent": f"bench-{number}",
                "label": "human",
                "new_memory": f"The user, revision {index}.",
            },
        ),
        "archival search": tool(
            "archival_memory_search",
            lambda number, index: {"agent": SEARCH_AGENT, "query": queries[(number * 7 + index) % len(queries)]},
        ),
        "agent list": tool("agent_list", lambda _number, _index: {"page_size": 50}),
    }


async def main(seconds: float, concurrency: list[int]) -> list[tuple[str, str, int, dict[str, float]]]:
    data_dir = tempfile.mkdtemp(prefix="engram-rest-bench-")
    release(start_embedded(Path(data_dir)))  # the first start writes the tuning; the next applies it
    embedded = start_embedded(Path(data_dir))
    env = {**os.environ, "ENGRAM_DATA_DIR": data_dir}
    env.pop("ENGRAM_DATABASE_URL", None)
    rows: list[tuple[str, str, int, dict[str, float]]] = []
    server = None
    try:
        token = engram("tokens", "create", "bench", "--principal", PRINCIPAL, env=env).strip().splitlines()[-1]
        ids = await prepare(data_dir, max(concurrency))
        headers = {"Authorization": f"Bearer {token}"}
        queries = corpus.questions(50)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = await anyio.open_process(
            ["engram", "serve", "--transport", "http", "--port", str(port), "--tools", "full"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        with anyio.fail_after(60):
            while not await answers(f"{base}/healthz"):
                if server.returncode is not None:
                    raise RuntimeError("engram serve --transport http exited")
                await anyio.sleep(0.2)

        @asynccontextmanager
        async def over_rest() -> AsyncIterator[httpx2.AsyncClient]:
            async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
                yield http

        @asynccontextmanager
        async def over_mcp() -> AsyncIterator[Client]:
            async with (
                create_mcp_http_client(headers=headers) as http,
                Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
            ):
                yield client

        rest, mcp = rest_calls(ids, queries), mcp_calls(queries)
        for operation in OPERATIONS:
            for clients in concurrency:
                for transport, connect, call in (
                    ("REST", over_rest, rest[operation]),
                    ("MCP", over_mcp, mcp[operation]),
                ):
                    result = await run_cell(connect, clients, seconds, call)
                    rows.append((operation, transport, clients, result))
                    print(f"{operation} {transport} {clients}: {result}", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.terminate()
            await server.wait()
        release(embedded)
        shutil.rmtree(data_dir, ignore_errors=True)
    return rows


def table(rows: list[tuple[str, str, int, dict[str, float]]]) -> str:
    lines = ["| operation | transport | clients | p50 ms | p95 ms | calls/s |", "|---|---|---|---|---|---|"]
    for operation, transport, clients, result in rows:
        lines.append(
            f"| {operation} | {transport} | {clients} | {result['p50_ms']:.1f} | {result['p95_ms']:.1f} "
            f"| {result['calls_per_second']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5, help="timed seconds per cell")
    parser.add_argument("--clients", default="1,16", help="numbers of concurrent clients, separated by commas")
    arguments = parser.parse_args()
    counts = [int(part) for part in arguments.clients.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        parser.error("--clients takes positive numbers, e.g. 1,16")
    started = time.perf_counter()
    measured = anyio.run(main, arguments.seconds, counts)
    print(table(measured))
    print(
        f"\n{PASSAGES} passages; 2 cores shared by clients and server; wall clock; "
        f"{time.perf_counter() - started:.0f} s in all."
    )
