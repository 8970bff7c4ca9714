"""Engram over streamable HTTP under concurrent clients, compared with stdio.

Starts `engram serve --transport http` (a bearer token from `engram tokens create`, so every request is
authenticated) and `engram serve` over stdio on one private embedded PostgreSQL holding 2,000 archival
passages, then measures core_memory_append and archival_memory_search (query embedding included) at 1,
8 and 32 concurrent HTTP clients, each client on its own agent: p50/p95 latency per call and the
throughput of all clients together. Prints JSON.

    python -m bench.http_load [--calls 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bench import corpus
from bench.archival import ms
from engram.server.runtime import open_runtime
from engram.server.settings import load_settings
from engram.storage.embedded import release, start_embedded
from engram.tools.memory import archival
from engram.tools.memory.agents import agent_create

CONCURRENCY = (1, 8, 32)


PRINCIPAL = "bench"  # the token's (the local principal takes no tokens)


def engram(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(["engram", *args], env=env, check=True, capture_output=True, text=True).stdout


async def prepare(data_dir: str, clients: int) -> None:
    settings = load_settings(overrides={"data_dir": data_dir}, environ={})
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope(PRINCIPAL)
        for number in range(clients):
            await agent_create(scope, f"bench-{number}")
        texts = list(corpus.passages(2000))
        for start in range(0, len(texts), 100):
            for text in texts[start : start + 100]:
                await archival.archival_memory_insert(scope, text, agent="bench-0")


async def run_clients(
    connect: Callable[[], Any], clients: int, calls: int, tool: str, arguments: Callable[[int, int], dict[str, Any]]
) -> dict[str, Any]:
    samples: list[float] = []
    ready: list[int] = []
    go = anyio.Event()
    ended: list[float] = []

    async def one(number: int) -> None:
        async with connect() as client:
            await client.call_tool(tool, arguments(number, -1))  # warm-up: the session, the agent, the model
            ready.append(number)
            if len(ready) == clients:
                go.set()
            await go.wait()  # every client starts its timed calls together
            for index in range(calls):
                start = time.perf_counter()
                reply = await client.call_tool(tool, arguments(number, index))
                samples.append(time.perf_counter() - start)
                assert not reply.is_error, reply.content
            ended.append(time.perf_counter())

    async with anyio.create_task_group() as group:
        for number in range(clients):
            group.start_soon(one, number)
        await go.wait()
        started = time.perf_counter()
    return ms(samples) | {"calls_per_second": round(len(samples) / (max(ended) - started), 1)}


def append_arguments(number: int, index: int) -> dict[str, Any]:
    return {"agent": f"bench-{number}", "label": "human", "content": f"fact {index}."}


def search_arguments(queries: list[str]) -> Callable[[int, int], dict[str, Any]]:
    def arguments(number: int, index: int) -> dict[str, Any]:
        return {"agent": "bench-0", "query": queries[(number * 7 + index) % len(queries)]}

    return arguments


async def main(calls: int) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="engram-http-bench-")
    release(start_embedded(Path(data_dir)))  # the first start writes the tuning; the next applies it
    embedded = start_embedded(Path(data_dir))
    env = {**os.environ, "ENGRAM_DATA_DIR": data_dir}
    await prepare(data_dir, max(CONCURRENCY))
    token = engram("tokens", "create", "bench", "--principal", PRINCIPAL, env=env).strip().splitlines()[-1]
    queries = corpus.questions(50)
    port = 8383
    server = await anyio.open_process(
        ["engram", "serve", "--transport", "http", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    report: dict[str, Any] = {"machine_note": "2 cores; clients and server share them; times are wall clock"}
    try:
        with anyio.fail_after(60):
            while not await answers(f"http://127.0.0.1:{port}/healthz"):
                if server.returncode is not None:
                    raise RuntimeError("engram serve --transport http exited")
                await anyio.sleep(0.2)

        @asynccontextmanager
        async def over_http() -> AsyncIterator[Client]:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                create_mcp_http_client(headers=headers) as http,
                Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client,
            ):
                yield client

        def over_stdio() -> Any:
            return Client(StdioServerParameters(command="engram", args=["serve"], env=env), mode="legacy")

        measures: list[tuple[str, Callable[[int, int], dict[str, Any]]]] = [
            ("core_memory_append", append_arguments),
            ("archival_memory_search", search_arguments(queries)),
        ]
        for tool, arguments in measures:
            report[tool] = {"stdio_1_client": await run_clients(over_stdio, 1, calls, tool, arguments)}
            for clients in CONCURRENCY:
                result = await run_clients(over_http, clients, calls, tool, arguments)
                report[tool][f"http_{clients}_clients"] = result
                print(json.dumps({tool: {clients: result}}), file=sys.stderr, flush=True)
    finally:
        server.terminate()
        await server.wait()
        release(embedded)
    return report


async def answers(url: str) -> bool:
    try:
        async with httpx2.AsyncClient() as probe:
            return (await probe.get(url)).status_code == 200
    except httpx2.TransportError:
        return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40, help="calls per client for each measure")
    print(json.dumps(anyio.run(main, parser.parse_args().calls), indent=2))
