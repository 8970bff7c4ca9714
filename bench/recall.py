"""Recall memory at scale: conversation_search latency and background embedding throughput.

Loads 100k synthetic chat messages (bench/corpus.py: 1,000 conversations of 100 turns, one agent) into a
fresh database on a private embedded PostgreSQL, with their embeddings (computed once, cached in the temp
dir), then measures and prints as JSON:
- conversation_search latency p50/p95 in process and through an MCP client (query embedding included),
  plain and with a date range;
- the throughput of embedding recorded messages (the background worker's path: claim a batch, embed,
  store), in messages/s.

    python -m bench.recall [--conversations 1000] [--turns 100] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import numpy

from bench import corpus
from bench.archival import admin, ms, timed_calls
from engram.server.app import build_server
from engram.server.runtime import open_runtime
from engram.server.settings import load_settings
from engram.storage import messages as message_repo
from engram.storage import search
from engram.storage.database import prepare_schema
from engram.storage.embedded import release, start_embedded
from engram.tools.memory import recall
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.embedding_queue import embed_pending
from engram.tools.scope import Scope

AGENT = "bench"
START = datetime(2024, 1, 1, tzinfo=UTC)


async def load(scope: Scope, threads: list[list[tuple[str, str]]], vectors: list[Any] | None) -> float:
    """Store the conversations (a day apart, a minute between turns), with `vectors` if given. Seconds."""
    started = time.perf_counter()
    index = 0
    async with scope.sessions.begin() as session:
        agent = await resolve_agent(session, scope, AGENT, create=True)
    for offset in range(0, len(threads), 50):
        async with scope.sessions.begin() as session:
            for number in range(offset, min(offset + 50, len(threads))):
                day = START + timedelta(days=number)
                thread = await message_repo.ensure_conversation(session, scope.owner_id, agent.id, f"chat-{number}")
                drafts = [
                    message_repo.NewMessage(
                        role=role, text=text, content={"text": text}, created_at=day + timedelta(minutes=minute)
                    )
                    for minute, (role, text) in enumerate(threads[number])
                ]
                stored = await message_repo.append(session, thread, drafts)
                if vectors is not None:
                    rows = [(item.id, vectors[index + n]) for n, item in enumerate(stored)]
                    await search.set_embeddings(session, "messages", rows, scope.embedder.model)
                index += len(drafts)
    if vectors is not None:  # built after loading: faster than inserting into the index row by row
        async with scope.sessions.begin() as session:
            await search.ensure_vector_index(session, "messages", len(vectors[0]))
    return time.perf_counter() - started


async def measure(
    url: str, data_dir: str, threads: list[list[tuple[str, str]]], vectors: list[Any], queries: list[str]
) -> dict[str, Any]:
    settings = load_settings(overrides={"database_url": url, "data_dir": data_dir}, environ={})
    result: dict[str, Any] = {"messages": sum(len(thread) for thread in threads), "conversations": len(threads)}
    middle = (START + timedelta(days=len(threads) // 2)).date()
    dated: dict[str, Any] = {"start_date": str(middle), "end_date": str(middle + timedelta(days=60))}
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        result["bulk_load_seconds"] = round(await load(scope, threads, vectors), 1)
        admin(url, "VACUUM ANALYZE messages")
        admin(url, "VACUUM ANALYZE conversations")
        for query in queries[:10]:  # warm-up
            await recall.conversation_search(scope, query, agent=AGENT)
        for label, arguments in (("search_in_process", {}), ("search_in_process_date_range", dated)):
            samples = []
            for query in queries:
                start = time.perf_counter()
                await recall.conversation_search(scope, query, agent=AGENT, **arguments)
                samples.append(time.perf_counter() - start)
            result[label] = ms(samples)
        answer = await recall.conversation_search(scope, queries[0], agent=AGENT)
        characters = len(answer.model_dump_json(indent=2))
        result["default_answer"] = {"characters": characters, "approx_tokens": characters // 4}

    from mcp.client.client import Client

    calls = [{"query": query, "agent": AGENT} for query in queries]
    async with Client(build_server(settings)) as client:
        result["search_through_mcp_client"] = await timed_calls(client, "conversation_search", calls)
    return result


async def embedding_throughput(url: str, data_dir: str, threads: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """Messages written without vectors, then embedded by the worker's code path."""
    settings = load_settings(overrides={"database_url": url, "data_dir": data_dir}, environ={})
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        await load(scope, threads, None)
        await scope.embedder.embed(["warm up the model"])
        start = time.perf_counter()
        count = await embed_pending(scope.sessions, scope.embedder, exact_scan_limit=scope.exact_scan_limit)
        seconds = time.perf_counter() - start
    return {"messages": count, "seconds": round(seconds, 1), "messages_per_second": round(count / seconds)}


async def main(conversation_count: int, turns: int, query_count: int) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="engram-recall-bench-")
    embedded = start_embedded(Path(data_dir))
    release(embedded)  # the first start wrote the tuning (shared_buffers 1GB); a restart applies it
    embedded = start_embedded(Path(data_dir))
    threads = corpus.conversations(conversation_count, turns)
    texts = [text for thread in threads for _, text in thread]
    queries = corpus.questions(query_count)
    report: dict[str, Any] = {"machine_note": "2 cores; times are wall clock and noisy"}

    settings = load_settings(overrides={"data_dir": data_dir}, environ={})
    cache = Path(tempfile.gettempdir()) / f"engram-bench-chat-vectors-{conversation_count}x{turns}.npy"
    if cache.exists():  # the corpus is deterministic; reuse its vectors from an earlier run
        vectors: list[Any] = list(numpy.load(cache))
    else:
        async with open_runtime(settings) as runtime:
            embedder = (await runtime.scope()).embedder
            vectors = []
            for offset in range(0, len(texts), 512):
                vectors.extend(await embedder.embed(texts[offset : offset + 512]))
        numpy.save(cache, numpy.stack(vectors))

    def fresh_database(name: str) -> str:
        url = embedded.sqlalchemy_url.replace("/postgres?", f"/{name}?", 1)
        admin(embedded.sqlalchemy_url, f"DROP DATABASE IF EXISTS {name}")
        admin(embedded.sqlalchemy_url, f"CREATE DATABASE {name}")
        prepare_schema(url)
        return url

    report["background_embedding"] = await embedding_throughput(fresh_database("bench_embed"), data_dir, threads[:30])
    print(json.dumps(report["background_embedding"]), file=sys.stderr, flush=True)
    report["search"] = await measure(fresh_database("bench_recall"), data_dir, threads, vectors, queries)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    arguments = parser.parse_args()
    print(json.dumps(anyio.run(main, arguments.conversations, arguments.turns, arguments.queries), indent=2))
