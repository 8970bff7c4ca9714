"""Archival memory at scale: insert throughput, search latency, HNSW recall, filtered-search completeness.

For each size N (default 10k and 100k) it loads N synthetic passages (bench/corpus.py) into a fresh
database on a private embedded PostgreSQL, in two layouts: one agent holding all N, and 100 agents
holding N/100 each. Then it measures, and prints as JSON:
- batched insert with embedding (passages/s), through the same path as `engram ingest`;
- archival_memory_search latency p50/p95 in process and through an MCP client (query embedding included);
- recall@10 of the HNSW index path against an exact scan on the same data (one-agent layout);
- that a filtered search (a tag on ~1% of passages) returns min(top_k, matches) every time;
- the size of a default answer (top_k 10) in characters and approximate tokens.
Embeddings of the corpus are computed once and reused across layouts (the insert measurement embeds).

    python -m bench.archival [--sizes 10000 100000] [--queries 200] [--layouts 1 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import numpy
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.pool import NullPool

from bench import corpus
from engram.server.app import build_server
from engram.server.runtime import open_runtime
from engram.server.settings import load_settings
from engram.storage import passages as passage_repo
from engram.storage import search
from engram.storage.database import prepare_schema
from engram.storage.embedded import release, start_embedded
from engram.tools.ingest.documents import store_passages
from engram.tools.memory import archival
from engram.tools.memory.agents import agent_create
from engram.tools.scope import Scope

RARE_TAG = "rare"


def ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
    }


def admin(url: str, statement: str) -> None:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


async def load(scope: Scope, agents: list[str], texts: list[str], vectors: list[Any]) -> tuple[float, float]:
    """Bulk-load precomputed embeddings (round-robin over agents), then build the HNSW index (faster than
    inserting into it row by row). Returns the seconds of each."""
    from engram.tools.memory.agents import resolve_agent

    start = time.perf_counter()
    async with scope.sessions.begin() as session:
        ids = {name: (await resolve_agent(session, scope, name)).id for name in agents}
    batch = 2000
    for offset in range(0, len(texts), batch):
        async with scope.sessions.begin() as session:
            for index, agent in enumerate(agents):
                items = [
                    passage_repo.NewPassage(
                        text=texts[i], embedding=vectors[i], tags=[RARE_TAG if i % 100 == 7 else "common"]
                    )
                    for i in range(offset + index, min(offset + batch, len(texts)), len(agents))
                ]
                await passage_repo.insert_many(session, scope.owner_id, ids[agent], scope.embedder.model, items)
    loaded = time.perf_counter()
    async with scope.sessions.begin() as session:
        await search.ensure_vector_index(session, "passages", len(vectors[0]))
    return loaded - start, time.perf_counter() - loaded


async def measure_layout(
    url: str, data_dir: str, texts: list[str], vectors: list[Any], queries: list[str], agent_count: int
) -> dict[str, Any]:
    settings = load_settings(overrides={"database_url": url, "data_dir": data_dir}, environ={})
    agents = [f"bench-{n}" for n in range(agent_count)]
    result: dict[str, Any] = {"agents": agent_count, "passages": len(texts)}
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        for name in agents:
            await agent_create(scope, name)
        load_seconds, index_seconds = await load(scope, agents, texts, vectors)
        result["bulk_load_seconds"] = round(load_seconds, 1)
        result["hnsw_build_seconds"] = round(index_seconds, 1)
        admin(url, "VACUUM ANALYZE passages")
        pick = [agents[n % agent_count] for n in range(len(queries))]

        for name, query in zip(pick[:10], queries[:10], strict=True):  # warm-up
            await archival.archival_memory_search(scope, query, agent=name)
        samples = []
        for name, query in zip(pick, queries, strict=True):
            start = time.perf_counter()
            await archival.archival_memory_search(scope, query, agent=name)
            samples.append(time.perf_counter() - start)
        result["search_in_process"] = ms(samples)

        filtered_ok = 0
        for name, query in zip(pick, queries, strict=True):
            page = await archival.archival_memory_search(scope, query, tags=[RARE_TAG], agent=name)
            expected = await _count_tag(scope, name, RARE_TAG)
            filtered_ok += len(page.results) == min(10, expected)
        result["filtered_search_complete"] = f"{filtered_ok}/{len(queries)}"

        answer = await archival.archival_memory_search(scope, queries[0], agent=pick[0])
        characters = len(answer.model_dump_json(indent=2))
        result["default_answer"] = {"characters": characters, "approx_tokens": characters // 4}

        if agent_count == 1:
            result["hnsw_recall@10"] = await _recall(scope, agents[0], queries)

    from mcp.client.client import Client

    calls = [{"query": query, "agent": name} for name, query in zip(pick, queries, strict=True)]
    async with Client(build_server(settings)) as client:
        result["search_through_mcp_client"] = await timed_calls(client, "archival_memory_search", calls)
    return result


async def timed_calls(client: Any, tool: str, calls: list[dict[str, Any]], warm_up: int = 10) -> dict[str, float]:
    """Latency of each call of `tool` through an MCP client, after `warm_up` untimed calls."""
    for arguments in calls[:warm_up]:
        await client.call_tool(tool, arguments)
    samples = []
    for arguments in calls:
        start = time.perf_counter()
        reply = await client.call_tool(tool, arguments)
        samples.append(time.perf_counter() - start)
        assert not reply.is_error, reply.content
    return ms(samples)


async def _count_tag(scope: Scope, agent: str, tag: str) -> int:
    from engram.tools.memory.agents import resolve_agent

    async with scope.sessions.begin() as session:
        agent_id = (await resolve_agent(session, scope, agent)).id
        found = await session.scalar(
            text("SELECT count(*) FROM passages WHERE agent_id = :a AND tags @> ARRAY[:t]"), {"a": agent_id, "t": tag}
        )
    return int(found or 0)


async def _recall(scope: Scope, agent: str, queries: list[str]) -> dict[str, Any]:
    """Top-10 of the HNSW path vs an exact scan, same query vectors, same data.

    `by_id` is the usual overlap of ids. The synthetic corpus has many passages at exactly the same
    distance from a query (templated text differing only in a name), so `by_distance` also counts an
    indexed result as found when it is no farther than the exact scan's 10th result.
    """
    from engram.tools.memory.agents import resolve_agent

    where = passage_repo.PassageFilter()
    overlaps, within, index_times = [], [], []
    for query in queries:
        [vector] = await scope.embedder.embed([query])
        async with scope.sessions.begin() as session:
            agent_id = (await resolve_agent(session, scope, agent)).id
            common = dict(query=vector, dimension=len(vector), model=scope.embedder.model, where=where, limit=10)
            exact = [
                row_id
                for row_id, _ in await search.vector_leg(
                    session, "passages", scope.owner_id, agent_id, exact_scan_limit=10**9, **common
                )
            ]
            start = time.perf_counter()
            indexed = [
                row_id
                for row_id, _ in await search.vector_leg(
                    session, "passages", scope.owner_id, agent_id, exact_scan_limit=0, **common
                )
            ]
            index_times.append(time.perf_counter() - start)
            distance = text("SELECT id, embedding <=> :query AS d FROM passages WHERE id = ANY(:ids)").bindparams(
                bindparam("query", type_=Vector())
            )
            found: dict[Any, float] = dict(
                (await session.execute(distance, {"query": vector, "ids": exact + indexed})).all()
            )
        overlaps.append(len(set(exact) & set(indexed)) / 10)
        farthest = max(found[i] for i in exact)
        within.append(sum(found[i] <= farthest + 1e-6 for i in indexed) / 10)
    return {
        "by_id": round(statistics.fmean(overlaps), 4),
        "by_distance": round(statistics.fmean(within), 4),
        "worst_query_by_distance": min(within),
        "hnsw_leg": ms(index_times),
    }


async def insert_throughput(url: str, data_dir: str, texts: list[str]) -> dict[str, Any]:
    """Embedding plus insert through the path `engram ingest` uses (batches, embedding the next batch
    while the previous one is written), one transaction per 500 passages."""
    settings = load_settings(overrides={"database_url": url, "data_dir": data_dir}, environ={})
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        await agent_create(scope, "insert-bench")
        from engram.tools.memory.agents import resolve_agent

        async with scope.sessions.begin() as session:
            agent_id = (await resolve_agent(session, scope, "insert-bench")).id
        await scope.embedder.embed(["warm up"])
        start = time.perf_counter()
        for offset in range(0, len(texts), 500):
            drafts = [passage_repo.NewPassage(text=t, embedding=None) for t in texts[offset : offset + 500]]
            async with scope.sessions.begin() as session:
                await store_passages(scope, session, agent_id, drafts)
        elapsed = time.perf_counter() - start
    return {"passages": len(texts), "seconds": round(elapsed, 2), "passages_per_second": round(len(texts) / elapsed)}


async def main(sizes: list[int], query_count: int, layouts: list[int]) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="engram-archival-bench-")
    embedded = start_embedded(Path(data_dir))
    release(embedded)  # the first start wrote the tuning (shared_buffers 1GB); a restart applies it
    embedded = start_embedded(Path(data_dir))
    texts_all = list(corpus.passages(max(sizes)))
    queries = corpus.questions(query_count)
    report: dict[str, Any] = {"machine_note": "2 cores; times are wall clock and noisy"}

    settings = load_settings(overrides={"data_dir": data_dir}, environ={})
    cache = Path(tempfile.gettempdir()) / f"engram-bench-vectors-{len(texts_all)}.npy"
    async with open_runtime(settings) as runtime:
        embedder = (await runtime.scope()).embedder
        if cache.exists():  # the corpus is deterministic; reuse its vectors from an earlier run
            vectors_all: list[Any] = list(numpy.load(cache))
        else:
            start = time.perf_counter()
            vectors_all = []
            for offset in range(0, len(texts_all), 512):
                vectors_all.extend(await embedder.embed(texts_all[offset : offset + 512]))
            seconds = time.perf_counter() - start
            numpy.save(cache, numpy.stack(vectors_all))
            report["corpus_embedding"] = {
                "passages": len(texts_all),
                "passages_per_second": round(len(texts_all) / seconds),
            }

    def fresh_database(name: str) -> str:
        url = embedded.sqlalchemy_url.replace("/postgres?", f"/{name}?", 1)
        admin(embedded.sqlalchemy_url, f"DROP DATABASE IF EXISTS {name}")
        admin(embedded.sqlalchemy_url, f"CREATE DATABASE {name}")
        prepare_schema(url)
        return url

    report["batched_insert_with_embedding"] = await insert_throughput(
        fresh_database("bench_insert"), data_dir, texts_all[:3000]
    )
    for size in sizes:
        for agent_count in layouts:
            name = f"bench_{size}_{agent_count}"
            report[f"{size}_passages_{agent_count}_agents"] = await measure_layout(
                fresh_database(name), data_dir, texts_all[:size], vectors_all[:size], queries, agent_count
            )
            print(json.dumps({name: report[f"{size}_passages_{agent_count}_agents"]}), file=sys.stderr, flush=True)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--layouts", type=int, nargs="+", default=[1, 100], help="agent counts to spread over")
    parser.add_argument("--queries", type=int, default=200)
    arguments = parser.parse_args()
    print(json.dumps(anyio.run(main, arguments.sizes, arguments.queries, arguments.layouts), indent=2))
