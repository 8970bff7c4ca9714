"""Engram over streamable HTTP under concurrent clients: a mixed workload, and single tools against stdio.

Every request is authenticated by a bearer token from `engram tokens create`; clients and server share
the machine's cores. Two measures, both printed as JSON:

- **The mix** (`--mix`, the default): each client calls, in turn, core_memory_append,
  archival_memory_insert, archival_memory_search, conversation_record and conversation_search, on its own
  fresh agent (and, at the largest count, with every client on one shared agent), at 1, 8 and 32
  clients: calls/s of all clients together, p50/p95 per call, errors, and lost writes (each acknowledged
  append, insert and record is looked for in the database afterwards; nothing else may be missing). Each
  run also reports the CPU seconds per call of the server, of PostgreSQL and of the clients, the load
  average, and how long the server's background worker took to embed the recorded messages afterwards.
  `--against ROOT` (repeatable) runs other copies of Engram's code too (ROOT holds an `engram/`
  package, e.g. the last commit extracted with `git archive`), interleaved with this one round by round
  (the order reversed every other round), and gives each side's calls/s over the first side's;
  `--without PACKAGE` (repeatable) hides an installed package from those copies, so that they run as their
  own dependencies installed them (before this checkout added uvloop and httptools, uvicorn ran without).
  `--profile` adds one more 32-client run of each side, profiled with the standard library only: the
  event loop thread under cProfile (CPU time by library, the top functions), every thread sampled (by
  library, by stage), and the database statements and transactions per call.
- **Single tools** (`--single`): core_memory_append and archival_memory_search (query embedding
  included, over 2,000 passages) at 1, 8 and 32 clients, and one client over stdio.

    python -m bench.http_load [--mix] [--single] [--calls 40] [--rounds 2] [--profile]
                              [--against ROOT] [--without PACKAGE]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bench import corpus
from bench.archival import ms
from engram.server.runtime import open_runtime
from engram.server.settings import load_settings
from engram.storage.embedded import EmbeddedPostgres, release, start_embedded
from engram.tools.memory import archival
from engram.tools.memory.agents import agent_create

CONCURRENCY = (1, 8, 32)
PRINCIPAL = "bench"  # the token's (the local principal takes no tokens)
MIX = (
    "core_memory_append",
    "archival_memory_insert",
    "archival_memory_search",
    "conversation_record",
    "conversation_search",
)
WRITES = {"core_memory_append": "appends", "archival_memory_insert": "passages", "conversation_record": "messages"}
ROOT = Path(__file__).resolve().parents[1]
SERVE = ["serve", "--transport", "http", "--tools", "full"]  # agent_create is not in the default profile


def engram(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(["engram", *args], env=env, check=True, capture_output=True, text=True).stdout


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# --- the mix -------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one run's clients did: latencies, errors, and the writes the server acknowledged."""

    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    acknowledged: Counter[str] = field(default_factory=Counter)
    per_tool: dict[str, list[float]] = field(default_factory=dict)


def mix_call(tag: str, number: int, index: int, agent: str, queries: list[str]) -> tuple[str, dict[str, Any]]:
    """The `index`-th call of client `number`: the five tools in turn, clients out of step with each other.
    Every written text carries `[tag c<number> i<index>]`, so the database can be searched for it later."""
    tool = MIX[(number + index) % len(MIX)]
    marker = f"[{tag} c{number} i{index}]"
    query = queries[(number * 7 + index) % len(queries)]
    if tool == "core_memory_append":
        return tool, {"agent": agent, "label": "log", "content": f"fact {marker}"}
    if tool == "archival_memory_insert":
        return tool, {"agent": agent, "content": f"{query.rstrip('?')} noted {marker}", "tags": ["bench"]}
    if tool == "conversation_record":
        role = "user" if index % 2 else "assistant"
        return tool, {"agent": agent, "role": role, "content": f"{query} {marker}", "conversation": f"c{number}"}
    return tool, {"agent": agent, "query": query}


async def run_mix(
    connect: Callable[[], Any],
    tag: str,
    clients: int,
    calls: int,
    queries: list[str],
    *,
    shared: bool,
    timed: Callable[[bool], None],
) -> tuple[Tally, float, list[str]]:
    """Run the mix; return the tally, the seconds from the common start to the last call, and the agents.
    `timed(True)` is called as the timed calls start (after each client's warm-up), `timed(False)` after."""
    tally = Tally()
    agents = [f"{tag}-shared"] if shared else [f"{tag}-c{number}" for number in range(clients)]
    log_block = [{"label": "log", "value": "", "limit": 1_000_000}]
    if shared:
        async with connect() as client:
            await setup_call(client, "agent_create", {"name": agents[0], "blocks": log_block})
    ready: list[int] = []
    go = anyio.Event()
    ended: list[float] = []

    async def one(number: int) -> None:
        agent = agents[0] if shared else agents[number]
        async with connect() as client:
            if not shared:
                await setup_call(client, "agent_create", {"name": agent, "blocks": log_block})
            await setup_call(client, "archival_memory_search", {"agent": agent, "query": "warm-up"})
            ready.append(number)
            if len(ready) == clients:
                go.set()
            await go.wait()  # every client starts its timed calls together
            for index in range(calls):
                tool, arguments = mix_call(tag, number, index, agent, queries)
                start = time.perf_counter()
                try:
                    reply = await client.call_tool(tool, arguments)
                except Exception as exc:  # a transport failure is an error of the run, not of the bench
                    tally.errors.append(f"{tool}: {type(exc).__name__}: {exc}"[:300])
                    continue
                elapsed = time.perf_counter() - start
                tally.samples.append(elapsed)
                tally.per_tool.setdefault(tool, []).append(elapsed)
                if reply.is_error:
                    tally.errors.append(f"{tool}: {reply.content}"[:300])
                elif tool in WRITES:
                    tally.acknowledged[WRITES[tool]] += 1
            ended.append(time.perf_counter())

    async with anyio.create_task_group() as group:
        for number in range(clients):
            group.start_soon(one, number)
        await go.wait()
        started = time.perf_counter()
        timed(True)
    timed(False)
    return tally, max(ended) - started, agents


async def setup_call(client: Client, tool: str, arguments: dict[str, Any]) -> None:
    reply = await client.call_tool(tool, arguments)
    if reply.is_error:
        raise RuntimeError(f"{tool} failed while setting up: {reply.content}")


def stored_writes(embedded: EmbeddedPostgres, tag: str, agents: list[str]) -> Counter[str]:
    """How many of the run's appended lines, passages and messages the database holds."""
    import psycopg

    like = f"%[{tag} c%"
    with psycopg.connect(embedded.libpq_uri) as connection:
        agent_ids = [
            row[0] for row in connection.execute("SELECT id FROM agents WHERE name = ANY(%s)", (agents,)).fetchall()
        ]
        passages = connection.execute(
            "SELECT count(*) FROM passages WHERE agent_id = ANY(%s) AND text LIKE %s", (agent_ids, like)
        ).fetchone()
        messages = connection.execute(
            "SELECT count(*) FROM messages WHERE agent_id = ANY(%s) AND text LIKE %s", (agent_ids, like)
        ).fetchone()
        values = connection.execute(
            "SELECT b.value FROM blocks b JOIN agent_blocks ab ON ab.block_id = b.id "
            "WHERE ab.agent_id = ANY(%s) AND ab.label = 'log'",
            (agent_ids,),
        ).fetchall()
    appends = sum(
        line.startswith("fact [") and f"[{tag} c" in line for (value,) in values for line in value.split("\n")
    )
    return Counter(passages=passages[0] if passages else 0, messages=messages[0] if messages else 0, appends=appends)


def wait_for_file(path: Path, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no profile report in {path}")
        time.sleep(0.1)


def unembedded_messages(embedded: EmbeddedPostgres) -> int:
    import psycopg

    with psycopg.connect(embedded.libpq_uri) as connection:
        row = connection.execute("SELECT count(*) FROM messages WHERE embedding IS NULL").fetchone()
    return int(row[0]) if row else 0


async def wait_for_embeddings(embedded: EmbeddedPostgres, limit: float = 300) -> float | None:
    """Seconds until the server's worker has embedded every recorded message (None: not within `limit`)."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if await anyio.to_thread.run_sync(unembedded_messages, embedded) == 0:
            return round(time.perf_counter() - start, 1)
        await anyio.sleep(0.5)
    return None


def postgres_processes(embedded: EmbeddedPostgres) -> list[psutil.Process]:
    pid = int((embedded.pgdata / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


class CpuMeter:
    """CPU seconds spent by the server (and by its main thread, the event loop's), by PostgreSQL (postmaster
    and backends) and by the clients (this process) between `start` and `stop`. Backends that exit in
    between are not counted (the pools keep theirs open)."""

    def __init__(self, server_pid: int, embedded: EmbeddedPostgres) -> None:
        self._server = psutil.Process(server_pid)
        self._embedded = embedded
        self._before: dict[str, dict[int, float]] = {}

    def _now(self) -> dict[str, dict[int, float]]:
        threads = {thread.id: thread.user_time + thread.system_time for thread in self._server.threads()}
        return {
            "server": cpu_seconds([self._server]),
            "server_event_loop_thread": {self._server.pid: threads.get(self._server.pid, 0.0)},
            "postgres": cpu_seconds(postgres_processes(self._embedded)),
            "clients": cpu_seconds([psutil.Process()]),
        }

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> dict[str, float]:
        after = self._now()
        return {
            part: sum(seconds - self._before[part].get(pid, 0.0) for pid, seconds in after[part].items())
            for part in after
        }


@dataclass(frozen=True)
class Side:
    """A copy of Engram's code to serve with: this checkout (root None) or another (its `engram/` in root),
    which may run without some installed packages (`hidden`: a folder of modules that refuse to import)."""

    name: str
    root: Path | None
    hidden: Path | None = None

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        env = {key: value for key, value in base.items() if key != "PYTHONPATH"}
        path = [str(folder) for folder in (self.root, self.hidden) if folder is not None]
        return env | ({"PYTHONPATH": os.pathsep.join(path)} if path else {})

    def engram_file(self, env: dict[str, str]) -> str:
        """Where this side's `engram` package comes from (proof that the other copy is the one loaded)."""
        command = [sys.executable, "-c", "import engram.server.http as h; print(h.__file__)"]
        return subprocess.run(
            command, env=self.environment(env), cwd=tempfile.gettempdir(), check=True, capture_output=True, text=True
        ).stdout.strip()


def hiding(packages: list[str]) -> Path | None:
    """A folder whose modules named `packages` refuse to import, put on another copy's PYTHONPATH so that it
    runs as its own dependencies installed it: uvicorn, for one, uses uvloop and httptools when it finds them."""
    if not packages:
        return None
    folder = Path(tempfile.mkdtemp(prefix="engram-bench-hidden-"))
    for package in packages:
        (folder / f"{package}.py").write_text(f"raise ImportError('{package} is hidden from this side by the bench')\n")
    return folder


@asynccontextmanager
async def serving(side: Side, port: int, env: dict[str, str], profile: Path | None = None) -> AsyncIterator[int]:
    """`engram serve --transport http` of `side` on `port` (under the sampling profiler if `profile` names
    the file for its report); yields the server's pid once /healthz answers."""
    if profile is None:
        command = [sys.executable, "-m", "engram.server.cli", *SERVE, "--port", str(port)]
        cwd = tempfile.gettempdir()  # so that `engram` is the side's, never a folder of the current directory
    else:
        command = [sys.executable, "-m", "bench.http_load", "--profiled-serve", str(profile), "--port", str(port)]
        cwd = str(ROOT)  # for `bench`; ROOT holds server/, tools/, storage/ but no `engram/`
    server = await anyio.open_process(command, env=side.environment(env), cwd=cwd, stderr=subprocess.DEVNULL)
    try:
        with anyio.fail_after(120):
            while not await answers(f"http://127.0.0.1:{port}/healthz"):
                if server.returncode is not None:
                    raise RuntimeError(f"the {side.name} server exited")
                await anyio.sleep(0.2)
        yield server.pid
    finally:
        if server.returncode is None:
            server.terminate()
            with anyio.move_on_after(60):
                await server.wait()
        if server.returncode is None:
            server.kill()
            await server.wait()


async def measure_mix(
    embedded: EmbeddedPostgres,
    connect: Callable[[], Any],
    server_pid: int,
    tag: str,
    clients: int,
    calls: int,
    queries: list[str],
    *,
    shared: bool,
    profiled: tuple[int, Path] | None = None,
) -> dict[str, Any]:
    meter = CpuMeter(server_pid, embedded)
    cpu: dict[str, float] = {}

    def timed(starting: bool) -> None:
        if profiled is not None:  # the sampler starts (SIGUSR1) and reports (SIGUSR2) with the timed calls
            os.kill(server_pid, signal.SIGUSR1 if starting else signal.SIGUSR2)
        if starting:
            meter.start()
        else:
            cpu.update(meter.stop())

    tally, seconds, agents = await run_mix(connect, tag, clients, calls, queries, shared=shared, timed=timed)
    load = load_average()
    drained = await wait_for_embeddings(embedded)
    stored = await anyio.to_thread.run_sync(stored_writes, embedded, tag, agents)
    lost = {kind: tally.acknowledged[kind] - stored[kind] for kind in WRITES.values()}
    calls_done = len(tally.samples)
    result: dict[str, Any] = {
        "calls_per_second": round(calls_done / seconds, 1),
        **ms(tally.samples),
        "errors": len(tally.errors),
        "lost_writes": sum(lost.values()),
        "writes_acknowledged": dict(tally.acknowledged),
        "writes_stored": dict(stored),
        "cpu_ms_per_call": {part: round(1000 * value / max(calls_done, 1), 1) for part, value in cpu.items()},
        "p50_ms_per_tool": {tool: ms(samples)["p50_ms"] for tool, samples in sorted(tally.per_tool.items())},
        "load_average": load,
        "embedding_backlog_s": drained,
    }
    if tally.errors:
        result["first_errors"] = tally.errors[:3]
    if profiled is not None:
        report = profiled[1]
        await anyio.to_thread.run_sync(wait_for_file, report)
        result["profile"] = json.loads(report.read_text()) | {"calls": calls_done}
        result["profile"]["statements_per_call"] = round(result["profile"].pop("statements") / calls_done, 2)
        result["profile"]["transactions_per_call"] = round(result["profile"].pop("transactions") / calls_done, 2)
    return result


async def mix(
    embedded: EmbeddedPostgres,
    env: dict[str, str],
    token: str,
    calls: int,
    rounds: int,
    sides: list[Side],
    profile: bool,
    only: list[str],
) -> dict[str, Any]:
    queries = corpus.questions(50)
    port = 8383
    report: dict[str, Any] = {
        "sides": {side.name: side.engram_file(env) for side in sides},
        "runs": {},
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def connector(url: str) -> Callable[[], Any]:
        @asynccontextmanager
        async def over_http() -> AsyncIterator[Client]:
            async with (
                create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
                Client(streamable_http_client(url, http_client=http)) as client,
            ):
                yield client

        return over_http

    plan = [(f"{clients}_clients", clients, False) for clients in CONCURRENCY] + [
        (f"{max(CONCURRENCY)}_clients_one_agent", max(CONCURRENCY), True)
    ]
    plan = [item for item in plan if not only or item[0] in only]
    # Sides take turns measure by measure (a fresh server each time, the order reversed every other
    # round), so that a change in the machine's load falls on every side alike.
    for round_number in range(rounds):
        for label, clients, shared in plan:
            for side in sides if round_number % 2 == 0 else list(reversed(sides)):
                async with serving(side, port, env) as pid:
                    connect = connector(f"http://127.0.0.1:{port}/mcp")
                    tag = f"{side.name}-r{round_number}-{label}"
                    result = await measure_mix(embedded, connect, pid, tag, clients, calls, queries, shared=shared)
                runs.setdefault(label, {}).setdefault(side.name, []).append(result)
                print(json.dumps({"side": side.name, "round": round_number, label: result}), file=sys.stderr)
                port += 1
    report["runs"] = runs
    report["summary"] = summary(runs, [side.name for side in sides])
    if profile:
        report["profile_32_clients"] = {}
        for side in sides:
            target = Path(tempfile.mkdtemp(prefix="engram-http-profile-")) / "profile.json"
            async with serving(side, port, env, profile=target) as pid:
                connect = connector(f"http://127.0.0.1:{port}/mcp")
                result = await measure_mix(
                    embedded,
                    connect,
                    pid,
                    f"{side.name}-profile",
                    32,
                    calls,
                    queries,
                    shared=False,
                    profiled=(pid, target),
                )
                report["profile_32_clients"][side.name] = result
                print(json.dumps({"side": side.name, "profile": result}), file=sys.stderr)
            port += 1
    return report


def summary(runs: dict[str, dict[str, list[dict[str, Any]]]], names: list[str]) -> dict[str, Any]:
    """Per measure and side: the median calls/s, p50 and p95 over the rounds, errors and lost writes summed,
    the median CPU milliseconds per call; and each side's calls/s over the first side's."""
    import statistics

    table: dict[str, Any] = {}
    for label, by_side in runs.items():
        row: dict[str, Any] = {}
        for name in names:
            results = by_side.get(name, [])
            if not results:
                continue
            row[name] = {
                "calls_per_second": statistics.median(result["calls_per_second"] for result in results),
                "p50_ms": statistics.median(result["p50_ms"] for result in results),
                "p95_ms": statistics.median(result["p95_ms"] for result in results),
                "errors": sum(result["errors"] for result in results),
                "lost_writes": sum(result["lost_writes"] for result in results),
                "cpu_ms_per_call": {
                    part: statistics.median(result["cpu_ms_per_call"][part] for result in results)
                    for part in results[0]["cpu_ms_per_call"]
                },
                "load_average": [result["load_average"][0] for result in results],
            }
        first = row.get(names[0], {}).get("calls_per_second")
        for name in names[1:]:
            if first and name in row:
                row[f"{name}/{names[0]}"] = round(row[name]["calls_per_second"] / first, 2)
        table[label] = row
    return table


# --- single tools --------------------------------------------------------------------------------------


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


async def single(env: dict[str, str], token: str, calls: int) -> dict[str, Any]:
    queries = corpus.questions(50)
    port = 8483
    report: dict[str, Any] = {}
    async with serving(Side("current", None), port, env):

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
                report[tool][f"http_{clients}_clients"] = result | {"load_average": load_average()}
                print(json.dumps({tool: {clients: result}}), file=sys.stderr, flush=True)
    return report


# --- the sampling profiler ------------------------------------------------------------------------------

LIBRARIES = (  # the first library found from a thread's innermost frame outwards is where its time went
    ("embedding (onnxruntime, fastembed, tokenizers)", ("onnxruntime", "fastembed", "tokenizers", "numpy")),
    ("database client (SQLAlchemy, psycopg, pgvector)", ("sqlalchemy", "psycopg", "pgvector")),
    ("JSON and validation (json, pydantic)", ("/json/", "pydantic", "orjson")),
    ("MCP SDK", ("/mcp/", "mcp_types", "sse_starlette")),
    ("HTTP server (uvicorn, h11, starlette)", ("uvicorn", "h11", "starlette", "httpx")),
    ("asyncio, anyio and threads", ("/asyncio/", "anyio", "selectors", "threading", "concurrent", "queue")),
    ("logging", ("/logging/",)),
    ("engram", ("/engram/", "/server/", "/tools/", "/storage/")),
)
STAGES = (  # the outermost of these frames on a thread's stack names the stage of the request it serves
    ("authentication (bearer token)", lambda path, name: name == "authenticate" and path.endswith("server/http.py")),
    (
        "embedding (queries, and recorded messages in the background)",
        lambda path, name: "embeddings.py" in path or "batching.py" in path,
    ),
    ("tool call", lambda path, name: "/engram/tools/" in path or "/tools/memory/" in path),
    ("background embedding worker", lambda path, name: "embedding_queue.py" in path),
)
IDLE = {
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("thread.py", "_worker"),
    ("_backends/_asyncio.py", "run"),  # anyio's worker thread waiting for work
}


class Sampler:
    """Samples every thread's stack every `interval` seconds while on: busy samples by library and by stage.

    Standard library only (sys._current_frames). A thread is idle when its innermost frame waits in
    select, on a lock or on a queue; C code (ONNX, the database driver) counts under the Python frame that
    called it."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.on = False
        self.samples = 0
        self.libraries: Counter[str] = Counter()
        self.stages: Counter[str] = Counter()
        self.innermost: Counter[str] = Counter()
        self.idle = 0
        self.statements = 0
        self.transactions = 0
        self.started = 0.0
        self.seconds = 0.0

    def run(self) -> None:
        me = threading.get_ident()
        while True:
            time.sleep(self.interval)
            if not self.on:
                continue
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self.sample(frame)

    def sample(self, frame: Any) -> None:
        stack: list[tuple[str, str]] = []
        current = frame
        while current is not None:
            stack.append((current.f_code.co_filename, current.f_code.co_name))
            current = current.f_back
        path, name = stack[0]
        if any(path.endswith(file) and name == function for file, function in IDLE):
            self.idle += 1
            return
        self.samples += 1
        self.libraries[library_of(stack)] += 1
        self.innermost[f"{'/'.join(path.split('/')[-2:])}:{name}"] += 1
        stage = "MCP transport and session (everything else)"
        for frame_path, frame_name in reversed(stack):
            found = next((label for label, test in STAGES if test(frame_path, frame_name)), None)
            if found:
                stage = found
                break
        self.stages[stage] += 1

    def start(self, *_: Any) -> None:
        """Called in the main thread (a signal handler), so cProfile follows the event loop's thread."""
        self.profile = cProfile.Profile(time.thread_time)  # CPU time: waits for the GIL or I/O are not counted
        self.profile.enable()
        self.libraries.clear()
        self.stages.clear()
        self.innermost.clear()
        self.samples = self.idle = self.statements = self.transactions = 0
        self.started = time.perf_counter()
        self.on = True

    def stop(self, target: Path) -> None:
        self.profile.disable()
        self.on = False
        self.seconds = time.perf_counter() - self.started
        seconds_per_sample = self.interval

        def share(counts: Counter[str]) -> dict[str, float]:
            return {label: round(count * seconds_per_sample, 2) for label, count in counts.most_common()}

        report = {
            "wall_seconds": round(self.seconds, 1),
            "busy_thread_seconds_by_library": share(self.libraries),
            "busy_thread_seconds_by_stage": share(self.stages),
            "busy_thread_seconds_by_innermost_function": share(Counter(dict(self.innermost.most_common(15)))),
            "event_loop_thread": event_loop_profile(self.profile),
            "statements": self.statements,
            "transactions": self.transactions,
        }
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(report))
        temporary.replace(target)


def event_loop_profile(profile: cProfile.Profile) -> dict[str, Any]:
    """The event loop's thread under cProfile: its CPU seconds by library (own time) and the 15 functions
    with the most own time. (cProfile slows Python code, so these are shares of its CPU time, not the
    unprofiled seconds; the time of a coroutine's callees is not summed up reliably, so none is given.)"""
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    own: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for (path, _line, name), (_primitive, _calls, own_time, _total_time, _callers) in stats.items():
        own[library_of([(path, name)])] += own_time
        functions[f"{'/'.join(path.split('/')[-2:])}:{name}"] += own_time
    total = sum(own.values())
    return {
        "profiled_cpu_seconds": round(total, 2),
        "share_by_library": {label: round(value / total, 3) for label, value in own.most_common()} if total else {},
        "top_functions_own_seconds": {label: round(value, 2) for label, value in functions.most_common(15)},
    }


def library_of(stack: list[tuple[str, str]]) -> str:
    for path, _ in stack:
        for label, markers in LIBRARIES:
            if any(marker in path for marker in markers):
                return label
    return "other"


def profiled_serve(report: Path, port: int) -> int:
    """`engram serve --transport http` under the Sampler: SIGUSR1 starts sampling, SIGUSR2 writes `report`."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from engram.server.cli import main as engram_main

    sampler = Sampler()

    def statement(*_: Any) -> None:
        sampler.statements += 1

    def transaction(*_: Any) -> None:
        sampler.transactions += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "begin", transaction)
    signal.signal(signal.SIGUSR1, sampler.start)
    signal.signal(signal.SIGUSR2, lambda *_: sampler.stop(report))
    threading.Thread(target=sampler.run, name="bench-sampler", daemon=True).start()
    return engram_main([*SERVE, "--port", str(port)])


# --- main ---------------------------------------------------------------------------------------------


async def main(arguments: argparse.Namespace) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="engram-http-bench-")
    release(start_embedded(Path(data_dir)))  # the first start writes the tuning; the next applies it
    embedded = start_embedded(Path(data_dir))
    env = {**os.environ, "ENGRAM_DATA_DIR": data_dir}
    report: dict[str, Any] = {
        "machine_note": f"{os.cpu_count()} cores; clients, server and PostgreSQL share them; times are wall clock",
        "load_average_at_start": load_average(),
        "hidden_from_other_copies": arguments.without,
    }
    try:
        if arguments.single:
            await prepare(data_dir, max(CONCURRENCY))
        token = engram("tokens", "create", "bench", "--principal", PRINCIPAL, env=env).strip().splitlines()[-1]
        if arguments.mix:
            hidden = hiding(arguments.without)
            sides = [Side(root.name, root, hidden) for root in arguments.against or []] + [Side("current", None)]
            report["mix"] = await mix(
                embedded, env, token, arguments.calls, arguments.rounds, sides, arguments.profile, arguments.only
            )
        if arguments.single:
            report["single"] = await single(env, token, arguments.calls)
    finally:
        release(embedded)
    report["load_average_at_end"] = load_average()
    return report


async def answers(url: str) -> bool:
    try:
        async with httpx2.AsyncClient() as probe:
            return (await probe.get(url)).status_code == 200
    except httpx2.TransportError:
        return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40, help="calls per client in each run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each measure per side (the mix)")
    parser.add_argument("--mix", action="store_true", help="the mixed workload (the default when neither is given)")
    parser.add_argument("--single", action="store_true", help="append and search alone, and over stdio")
    parser.add_argument(
        "--against",
        action="append",
        metavar="ROOT",
        type=lambda root: Path(root).resolve(),
        help="a folder holding another copy's `engram/` package (repeatable)",
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="an installed package the --against copies run without (repeatable), as their own dependencies had it",
    )
    parser.add_argument(
        "--only", nargs="+", default=[], metavar="MEASURE", help="only these measures of the mix, e.g. 32_clients"
    )
    parser.add_argument("--profile", action="store_true", help="one more 32-client mix per side, profiled")
    parser.add_argument("--profiled-serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8383, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.profiled_serve:
        raise SystemExit(profiled_serve(parsed.profiled_serve, parsed.port))
    if not parsed.single:
        parsed.mix = True
    print(json.dumps(anyio.run(main, parsed), indent=2))
