"""Moving a large agent: `engram agents export` and `import` of one agent holding 100k archival passages and 100k
messages (1,000 conversations of 100), with their vectors, in Engram's own format.

The agent is built fast, straight through the storage layer (`storage.transfer`, the import's own writes) with
synthetic unit vectors (bench/corpus.py's texts), on a private embedded PostgreSQL. Export (with vectors) and
import (into an empty database, vectors used, so nothing is embedded again) each run in a process of their own,
which reports its wall-clock seconds, its peak resident memory (`ru_maxrss`) and how much that grew over the step
from the process's resident memory at its start. The import builds no HNSW index here (an agent past
`archival_exact_scan_limit` gets one as an import ends, built in one go); `--index` times those builds on their
own (random vectors make them slower than real embeddings do). Prints JSON.

    python -m bench.transfer [--passages 100000] [--conversations 1000] [--turns 100] [--index]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
import numpy

from bench import corpus
from bench.archival import admin
from engram.server.runtime import open_runtime
from engram.server.settings import load_settings
from engram.storage import search, transfer
from engram.storage.database import prepare_schema
from engram.storage.embedded import release, start_embedded
from engram.tools.memory.agents import agent_create
from engram.tools.scope import Scope

AGENT = "bench"
START = datetime(2024, 1, 1, tzinfo=UTC)
DIMENSION = 384
BATCH = 5000


def unit_vectors(count: int, rng: numpy.random.Generator) -> numpy.ndarray:
    vectors = rng.standard_normal((count, DIMENSION)).astype(numpy.float32)
    return vectors / numpy.linalg.norm(vectors, axis=1, keepdims=True)


async def build(scope: Scope, passages: int, conversations: int, turns: int) -> dict[str, Any]:
    """The agent, loaded in bulk with vectors; its counts and the seconds it took."""
    started = time.perf_counter()
    rng = numpy.random.default_rng(3)
    model = scope.embedder.model
    agent_id = uuid.UUID((await agent_create(scope, AGENT, description="transfer benchmark")).id)
    texts = corpus.passages(passages)
    for offset in range(0, passages, BATCH):
        size = min(BATCH, passages - offset)
        vectors = unit_vectors(size, rng)
        rows = [
            {
                "text": next(texts),
                "tags": ["bench", f"group-{(offset + n) % 10}"],
                "metadata": {"n": offset + n},
                "source": None,
                "created_at": START + timedelta(seconds=offset + n),
                "embedding": transfer.WireVector.of_float32s(vectors[n].tobytes()),
                "embedding_model": model,
            }
            for n in range(size)
        ]
        async with scope.sessions.begin() as session:
            await transfer.insert_passages(session, scope.owner_id, agent_id, rows)
    async with scope.sessions.begin() as session:
        stored = (await transfer.counts(session, scope.owner_id, agent_id))["passages"]
    threads = corpus.conversations(conversations, turns)
    messages = 0
    for offset in range(0, conversations, 50):
        async with scope.sessions.begin() as session:
            ids = []
            for number in range(offset, min(offset + 50, conversations)):
                day = START + timedelta(days=number)
                conversation_id = await transfer.insert_conversation(
                    session,
                    scope.owner_id,
                    agent_id,
                    name=f"chat-{number}",
                    title=f"Chat {number}",
                    source="bench",
                    context_start=1,
                    created_at=day,
                )
                ids.append(conversation_id)
                vectors = unit_vectors(len(threads[number]), rng)
                rows = [
                    {
                        "conversation_id": conversation_id,
                        "ordinal": ordinal,
                        "role": role,
                        "content": {"text": text},
                        "text": text,
                        "external_key": None,
                        "search_call": False,
                        "created_at": day + timedelta(minutes=ordinal),
                        "embedding": transfer.WireVector.of_float32s(vectors[ordinal - 1].tobytes()),
                        "embedding_model": model,
                    }
                    for ordinal, (role, text) in enumerate(threads[number], start=1)
                ]
                await transfer.insert_messages(session, scope.owner_id, agent_id, rows)
                messages += len(rows)
            await transfer.count_messages(session, ids)
    return {"passages": stored, "messages": messages, "seconds": round(time.perf_counter() - started, 1)}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1_048_576


async def step(kind: str, url: str, data_dir: str, file: Path) -> dict[str, Any]:
    """One export or import in this process: seconds, peak resident memory and its growth during the step."""
    from engram.tools.ingest.engram_files import export_agents, import_agents

    overrides: dict[str, Any] = {"database_url": url, "data_dir": data_dir, "archival_exact_scan_limit": 10_000_000}
    settings = load_settings(overrides=overrides, environ={})
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        before = resident_mb()
        started = time.perf_counter()
        if kind == "export":
            with file.open("wb") as out:
                done = await export_agents(scope, [AGENT], out, with_vectors=True)
            result: dict[str, Any] = {"records": done.counts, "vectors": done.vectors}
        else:
            with file.open("rb") as source:
                report = await import_agents(scope, source, where=str(file))
            result = {"passages": report.passages, "messages": report.messages, "embedded": report.embedded}
        seconds = time.perf_counter() - started
    return result | {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_mb()),
        "rss_growth_mb": round(peak_mb() - before),
    }


def in_child(kind: str, url: str, data_dir: str, file: Path) -> dict[str, Any]:
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.transfer",
            "--step",
            kind,
            "--url",
            url,
            "--data-dir",
            data_dir,
            "--file",
            str(file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        raise RuntimeError(f"the {kind} step failed: {finished.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(finished.stdout)
    return result | {"file_mb": round(file.stat().st_size / 1_000_000, 1)}


async def build_indexes(url: str, data_dir: str) -> dict[str, float]:
    """Seconds to build each table's HNSW index in one go, as an import ends for an agent past the limit."""
    settings = load_settings(overrides={"database_url": url, "data_dir": data_dir}, environ={})
    found: dict[str, float] = {}
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        tables: tuple[Literal["passages", "messages"], ...] = ("passages", "messages")
        for table in tables:
            started = time.perf_counter()
            async with scope.sessions.begin() as session:
                await search.ensure_vector_index(session, table, DIMENSION)
            found[f"{table}_hnsw_seconds"] = round(time.perf_counter() - started, 1)
    return found


async def main(passages: int, conversations: int, turns: int, index: bool) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="engram-transfer-bench-")
    embedded = start_embedded(Path(data_dir))
    release(embedded)  # the first start wrote the tuning (shared_buffers 1GB); a restart applies it
    embedded = start_embedded(Path(data_dir))

    def fresh_database(name: str) -> str:
        url = embedded.sqlalchemy_url.replace("/postgres?", f"/{name}?", 1)
        admin(embedded.sqlalchemy_url, f"DROP DATABASE IF EXISTS {name}")
        admin(embedded.sqlalchemy_url, f"CREATE DATABASE {name}")
        prepare_schema(url)
        return url

    report: dict[str, Any] = {"machine_note": "2 cores; wall clock, noisy"}
    source = fresh_database("bench_transfer_source")
    settings = load_settings(overrides={"database_url": source, "data_dir": data_dir}, environ={})
    async with open_runtime(settings) as runtime:
        report["built"] = await build(await runtime.scope(), passages, conversations, turns)
    print(json.dumps(report), file=sys.stderr, flush=True)
    file = Path(data_dir) / "bench.engram.zip"
    report["export_with_vectors"] = in_child("export", source, data_dir, file)
    print(json.dumps(report), file=sys.stderr, flush=True)
    target = fresh_database("bench_transfer_target")
    report["import_with_vectors"] = in_child("import", target, data_dir, file)
    if index:
        print(json.dumps(report), file=sys.stderr, flush=True)
        report["index_after_import"] = await build_indexes(target, data_dir)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--index", action="store_true", help="also time the HNSW index builds after the import")
    parser.add_argument("--step", choices=("export", "import"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", dest="data_dir", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.step:
        print(json.dumps(anyio.run(step, arguments.step, arguments.url, arguments.data_dir, arguments.file)))
    else:
        report = anyio.run(main, arguments.passages, arguments.conversations, arguments.turns, arguments.index)
        print(json.dumps(report, indent=2))
