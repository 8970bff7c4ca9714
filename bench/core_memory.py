"""Latency of core_memory_append: through `engram serve` over stdio (as a host calls it) and in process.

Each call appends a short line to a block with a large limit, one call at a time after a warm-up.
Prints JSON with p50/p95/p99 in milliseconds.

    python -m bench.core_memory [--calls 500]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from engram.server.app import build_server
from engram.server.settings import load_settings

BLOCK = {"label": "log", "value": "", "limit": 1_000_000}


async def measure(client: Client, calls: int, agent: str) -> dict[str, float]:
    created = await client.call_tool("agent_create", {"name": agent, "blocks": [BLOCK]})
    assert not created.is_error, created.content
    for n in range(20):  # warm-up: connections, caches
        await client.call_tool("core_memory_append", {"agent": agent, "label": "log", "content": f"warm {n}"})
    samples: list[float] = []
    for n in range(calls):
        start = time.perf_counter()
        result = await client.call_tool("core_memory_append", {"agent": agent, "label": "log", "content": f"line {n}"})
        samples.append(time.perf_counter() - start)
        assert not result.is_error, result.content
    return summarize(samples)


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "calls": len(samples),
        "p50_ms": at(0.5),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "mean_ms": round(statistics.fmean(samples) * 1000, 2),
    }


async def main(calls: int) -> dict[str, Any]:
    engram = shutil.which("engram")
    assert engram, "install Engram first (see README)"
    data_dir = Path(tempfile.mkdtemp(prefix="engram-bench-"))
    # Registered first, so it runs last: after the embedded server this process joined has been stopped.
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    env = {**os.environ, "ENGRAM_DATA_DIR": str(data_dir)}
    env.pop("ENGRAM_DATABASE_URL", None)
    async with Client(
        StdioServerParameters(command=engram, args=["serve", "--tools", "full"], env=env), mode="legacy"
    ) as client:
        stdio = await measure(client, calls, "bench-stdio")
    settings = load_settings(overrides={"data_dir": str(data_dir), "tool_profile": "full"}, environ={})
    async with Client(build_server(settings)) as client:
        in_process = await measure(client, calls, "bench-inprocess")
    return {"core_memory_append_stdio": stdio, "core_memory_append_in_process": in_process}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    print(json.dumps(anyio.run(main, parser.parse_args().calls), indent=2))
