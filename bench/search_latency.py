"""Search at its floor: conversation_search and archival_memory_search against a trivial call plus the
query's embedding, for an older commit's code and this checkout's, in one run.

One private embedded PostgreSQL holds three agents, each with the same turns as messages and as passages
(bench/corpus.py's synthetic chats, embedded once and cached in the temp dir like bench/recall.py's):
`conversation` (7 conversations of 100 turns, the size of one long real dialogue), `10k` and `100k`.
Each side (`--old REV`, extracted with `git archive`, and this checkout) runs as `engram serve` over stdio,
both at once; every query is asked of both in turn, so that the machine's noise falls on both alike:
core_memory_view (the trivial call), conversation_search and archival_memory_search with their defaults.
The floor is the trivial call's latency plus embedding the query in this process (the checkout's
embedder). Prints JSON, and a Markdown table with `--markdown`.

    python -m bench.search_latency [--old 8aa7afa] [--scales conversation,10k,100k] [--queries 200] [--markdown]

(~10 minutes; the first run also embeds the 100k turns.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import numpy
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from bench import corpus
from bench.archival import admin
from engram.server.runtime import open_runtime
from engram.server.settings import load_settings
from engram.storage import messages as message_repo
from engram.storage import passages as passage_repo
from engram.storage import search
from engram.storage.embedded import release, start_embedded
from engram.tools.memory.agents import resolve_agent
from engram.tools.scope import Scope

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "8aa7afa"  # main before issues 15 (recall ranking) and 17 (search at the floor)
SCALES = {"conversation": 7, "10k": 100, "100k": 1000}  # agent -> conversations of TURNS turns
TURNS = 100
START = datetime(2024, 1, 1, tzinfo=UTC)
SEARCHES = ("conversation_search", "archival_memory_search")


def old_code(revision: str, into: Path) -> Path:
    """`revision`'s server, tools and storage extracted under `into`, importable as `engram` from the
    returned root (put first on PYTHONPATH, it wins over this checkout's editable install)."""
    tree = into / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    package = into / "root" / "engram"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for layer in ("server", "tools", "storage"):
        (package / layer).symlink_to(tree / layer, target_is_directory=True)
    return package.parent


def loaded_from(env: dict[str, str]) -> str:
    """Where a process with `env` imports Engram from (proof of which side's code runs)."""
    command = [sys.executable, "-c", "import engram.tools.memory.recall as r; print(r.__file__)"]
    return subprocess.run(
        command, env=env, cwd=tempfile.gettempdir(), check=True, capture_output=True, text=True
    ).stdout.strip()


async def vectors_of(scope: Scope, texts: list[str], needed: int) -> list[Any]:
    """The vectors of the first `needed` texts: from the cache of all of them if there is one, else embedded
    (and cached when all are needed)."""
    cache = Path(tempfile.gettempdir()) / f"engram-bench-chat-vectors-{SCALES['100k']}x{TURNS}.npy"
    if cache.exists():  # the corpus is deterministic: bench/recall.py's cache holds the same vectors
        return list(numpy.load(cache)[:needed])
    vectors: list[Any] = []
    for offset in range(0, needed, 512):
        vectors.extend(await scope.embedder.embed(texts[offset : min(offset + 512, needed)]))
    if needed == len(texts):
        numpy.save(cache, numpy.stack(vectors))
    return vectors


async def load(url: str, data_dir: str, scales: list[str]) -> None:
    """Each agent's conversations as messages and the same turns as passages, with their vectors."""
    settings = load_settings(overrides={"database_url": url, "data_dir": data_dir}, environ={})
    threads = corpus.conversations(SCALES["100k"], TURNS)  # the same corpus whatever the scales asked
    texts = [text for thread in threads for _, text in thread]
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        vectors = await vectors_of(scope, texts, max(SCALES[name] for name in scales) * TURNS)
        for name in scales:
            count = SCALES[name]
            async with scope.sessions.begin() as session:
                agent = await resolve_agent(session, scope, name, create=True)
            for offset in range(0, count, 20):
                async with scope.sessions.begin() as session:
                    for number in range(offset, min(offset + 20, count)):
                        day = START + timedelta(days=number)
                        thread = await message_repo.ensure_conversation(
                            session, scope.owner_id, agent.id, f"chat-{number}"
                        )
                        first = number * TURNS
                        stored = await message_repo.append(
                            session,
                            thread,
                            [
                                message_repo.NewMessage(
                                    role=role, text=said, content={"text": said}, created_at=day + timedelta(minutes=n)
                                )
                                for n, (role, said) in enumerate(threads[number])
                            ],
                        )
                        await search.set_embeddings(
                            session,
                            "messages",
                            [(row.id, vectors[first + n]) for n, row in enumerate(stored)],
                            scope.embedder.model,
                        )
                        await passage_repo.insert_many(
                            session,
                            scope.owner_id,
                            agent.id,
                            scope.embedder.model,
                            [
                                passage_repo.NewPassage(text=texts[first + n], embedding=vectors[first + n], tags=[])
                                for n in range(TURNS)
                            ],
                        )
            print(f"loaded {name}", file=sys.stderr, flush=True)
        async with scope.sessions.begin() as session:
            for table in search.SEARCHABLE_TABLES:
                await search.ensure_vector_index(session, table, len(vectors[0]))
    for table in ("messages", "passages", "conversations"):
        admin(url, f"VACUUM ANALYZE {table}")


@asynccontextmanager
async def server(env: dict[str, str]) -> AsyncIterator[Client]:
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "engram.server.cli", "serve"], env=env, cwd=tempfile.gettempdir()
    )
    async with Client(parameters, mode="legacy") as client:
        yield client


async def timed(client: Client, tool: str, arguments: dict[str, Any]) -> float:
    start = time.perf_counter()
    reply = await client.call_tool(tool, arguments)
    seconds = time.perf_counter() - start
    if reply.is_error:
        raise RuntimeError(f"{tool} failed: {reply.content}")
    return seconds


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
    }


async def measure(
    sides: dict[str, dict[str, str]], scales: list[str], queries: list[str], embedder: Any
) -> dict[str, Any]:
    """Per scale and side: the trivial call, the query's embedding and both searches, interleaved."""
    report: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(server(env)) for name, env in sides.items()}
        for scale in scales:
            samples: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
            embedding: list[float] = []
            for number, query in enumerate([*queries[:10], *queries]):  # the first ten warm up
                start = time.perf_counter()
                await embedder.embed([query])
                seconds = time.perf_counter() - start
                if number >= 10:
                    embedding.append(seconds)
                for name, client in clients.items():
                    for tool, arguments in (
                        ("core_memory_view", {"agent": scale}),
                        ("conversation_search", {"query": query, "agent": scale}),
                        ("archival_memory_search", {"query": query, "agent": scale}),
                    ):
                        seconds = await timed(client, tool, arguments)
                        if number >= 10:
                            samples[name].setdefault(tool, []).append(seconds)
            report[scale] = {"embed_query_in_process": summary(embedding)}
            for name in sides:
                floor = [
                    trivial + embed for trivial, embed in zip(samples[name]["core_memory_view"], embedding, strict=True)
                ]
                row: dict[str, Any] = {"trivial_call": summary(samples[name]["core_memory_view"])}
                row["floor"] = summary(floor)
                for tool in SEARCHES:
                    row[tool] = summary(samples[name][tool]) | {
                        "p50_x_floor": round(statistics.median(samples[name][tool]) / statistics.median(floor), 2),
                        "p95_x_floor": round(
                            sorted(samples[name][tool])[int(0.95 * (len(floor) - 1))] / statistics.median(floor),
                            2,
                        ),
                    }
                report[scale][name] = row
            print(json.dumps({scale: report[scale]}), file=sys.stderr, flush=True)
    return report


def markdown(report: dict[str, Any], old: str) -> str:
    lines = [
        "| scale | code | floor p50 | conversation_search p50 / p95 (x floor) "
        "| archival_memory_search p50 / p95 (x floor) |",
        "|---|---|---|---|---|",
    ]
    for scale in [name for name in SCALES if name in report]:
        for name in ("old", "new"):
            row = report[scale][name]
            cells = [
                f"{row[tool]['p50_ms']} / {row[tool]['p95_ms']} ms "
                f"({row[tool]['p50_x_floor']}x / {row[tool]['p95_x_floor']}x)"
                for tool in SEARCHES
            ]
            code = old if name == "old" else "new"
            lines.append(f"| {scale} | {code} | {row['floor']['p50_ms']} ms | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


async def main(old: str, scales: list[str], query_count: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="engram-search-latency-"))
    data_dir = work / "data"
    embedded = start_embedded(data_dir)
    release(embedded)  # the first start wrote the tuning (shared_buffers 1GB); a restart applies it
    embedded = start_embedded(data_dir)
    try:
        await load(embedded.sqlalchemy_url, str(data_dir), scales)
        base = {
            key: value for key, value in os.environ.items() if key != "PYTHONPATH" and not key.startswith("ENGRAM_")
        }
        base["ENGRAM_DATA_DIR"] = str(data_dir)
        sides = {"old": base | {"PYTHONPATH": str(old_code(old, work / "old"))}, "new": base}
        report: dict[str, Any] = {
            "old": old,
            "code": {name: loaded_from(env) for name, env in sides.items()},
            "load_average": os.getloadavg(),
        }
        settings = load_settings(overrides={"data_dir": str(data_dir)}, environ={})
        async with open_runtime(settings) as runtime:
            embedder = (await runtime.scope()).embedder
            await embedder.embed(["warm up the model"])
            report |= await measure(sides, scales, corpus.questions(query_count), embedder)
        report["load_average_after"] = os.getloadavg()
        return report
    finally:
        release(embedded)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", default=BASELINE, help="the commit to compare with (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--scales", default=",".join(SCALES), help="agents to measure (default: %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="also print the table the README shows")
    arguments = parser.parse_args()
    scales = arguments.scales.split(",")
    if unknown := set(scales) - set(SCALES):
        parser.error(f"unknown scales {sorted(unknown)}; choose from {', '.join(SCALES)}")
    result = anyio.run(main, arguments.old, scales, arguments.queries)
    print(json.dumps(result, indent=2))
    if arguments.markdown:
        print(markdown(result, arguments.old))
