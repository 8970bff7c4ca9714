"""Cold start of `engram serve` to its `initialize` reply, against a hello-world MCPServer started the same way;
and the first search of a session against later ones.

Start-up: both servers are spawned as fresh processes, alternately, and timed from spawn to the first reply
line on stdout (and Engram to its first tool result, a `core_memory_view` sent right after `initialize`).
Engram runs on the embedded PostgreSQL in a temporary data dir (created once before timing: initdb is a
one-time cost, reported separately, as is the storing of the passages searched below).

First search: a fresh `engram serve` answers `initialize`; two seconds later (a host's user typing) the first
call is an `archival_memory_search`; then `--searches` more searches with other queries. The first costs the
embedding model's loading unless the server loaded it in the meantime; `first_search_ratio` is the first
search's median over the later ones' median.

With `--baseline ROOT`, another Engram (e.g. HEAD's) is timed too, alternately with this one in the same run:
ROOT holds `engram/{server,tools,storage}` (`git archive HEAD | tar -x -C OLD`, then ROOT/engram/server ->
OLD/server, and so on); it runs with PYTHONPATH=ROOT, and the report says which files each side imported.
Prints JSON, with the load average.

    python -m bench.startup [--runs 15] [--search-runs 8] [--searches 5] [--baseline ROOT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
FIRST_CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "core_memory_view", "arguments": {}},
}
TYPING_SECONDS = 2.0  # between `initialize` and the first search
NOTES = [
    f"Note {number}: {topic}"
    for number, topic in enumerate(
        [
            "the billing API moves to port 8443 next sprint",
            "the flaky invoice test fails at midnight UTC",
            "staging migrations time out after 60 seconds",
            "the Halvard cutover is planned for March",
            "we pinned numpy below 2.0 for the old pandas",
            "the CSV export drops rows with empty emails",
            "Priya owns the on-call rota until June",
            "the search page should load in under 300 ms",
        ]
        * 3
    )
]
QUERIES = [
    "Which port does the billing API use?",
    "Why does the invoice test fail?",
    "When is the cutover?",
    "What numpy version do we use?",
    "Who is on call?",
    "What is wrong with the CSV export?",
    "How long may a migration take?",
    "How fast must the search page be?",
]


class Server:
    """An MCP server spawned over stdio, spoken to in JSON-RPC lines."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
        )
        self._next_id = 10

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def reply(self, request_id: int) -> dict[str, Any]:
        """The response to `request_id` (notifications in between are skipped); fails on an error."""
        assert self.process.stdout
        while True:
            line = self.process.stdout.readline()
            assert line, "the server closed its output"
            message = json.loads(line)
            if message.get("id") == request_id:
                assert "result" in message and not message["result"].get("isError"), line[:500]
                return dict(message)

    def initialize(self) -> float:
        """Seconds from spawn to the initialize reply."""
        self.send(INITIALIZE)
        self.reply(1)
        elapsed = time.perf_counter() - self.started
        self.send(INITIALIZED)
        return elapsed

    def call(self, tool: str, **arguments: Any) -> float:
        """Seconds the tool call took, request to result."""
        self._next_id += 1
        started = time.perf_counter()
        self.send(
            {
                "jsonrpc": "2.0",
                "id": self._next_id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
        )
        self.reply(self._next_id)
        return time.perf_counter() - started

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(timeout=60)


def time_to_reply(command: list[str], env: dict[str, str], then_call: bool = False) -> tuple[float, float | None]:
    """Seconds from spawn to the initialize reply (and to the first tool result, if asked)."""
    server = Server(command, env)
    initialized = server.initialize()
    first_call = None
    if then_call:
        server.send(FIRST_CALL)
        server.reply(2)
        first_call = time.perf_counter() - server.started
    server.close()
    return initialized, first_call


def searches(command: list[str], env: dict[str, str], run: int, later: int) -> tuple[float, list[float]]:
    """Seconds of the first search of a fresh server (sent TYPING_SECONDS after initialize) and of `later` ones."""
    server = Server(command, env)
    server.initialize()
    time.sleep(TYPING_SECONDS)  # the scenario itself: a host's user types the first request
    queries = [QUERIES[(run + offset) % len(QUERIES)] for offset in range(later + 1)]
    first = server.call("archival_memory_search", query=queries[0])
    rest = [server.call("archival_memory_search", query=query) for query in queries[1:]]
    server.close()
    return first, rest


def store_notes(command: list[str], env: dict[str, str]) -> None:
    server = Server(command, env)
    server.initialize()
    for note in NOTES:
        server.call("archival_memory_insert", content=note)
    server.close()


def loaded_from(env: dict[str, str]) -> str:
    """Where the `engram` package of this environment comes from (to tell a baseline from this code)."""
    probe = "import engram.server; print(engram.server.__file__)"
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout.strip()


def ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values) * 1000, 1), "min_ms": round(min(values) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="start-ups timed per server")
    parser.add_argument("--search-runs", type=int, default=8, help="fresh servers whose first search is timed")
    parser.add_argument("--searches", type=int, default=5, help="later searches per fresh server")
    parser.add_argument("--baseline", type=Path, help="a PYTHONPATH root with another Engram to time alongside")
    args = parser.parse_args()
    beside = Path(sys.executable).parent / "engram"  # the script itself: a version manager's shim adds its own start
    engram = str(beside) if beside.exists() else shutil.which("engram")
    assert engram, "install Engram first (see README)"
    data_dir = Path(tempfile.mkdtemp(prefix="engram-bench-"))
    env = {**os.environ, "ENGRAM_DATA_DIR": str(data_dir)}
    env.pop("ENGRAM_DATABASE_URL", None)
    sides = {"this": env}
    if args.baseline:
        sides["baseline"] = {**env, "PYTHONPATH": str(args.baseline.resolve())}
    hello = [sys.executable, str(Path(__file__).with_name("hello_server.py"))]
    serve = [engram, "serve"]
    report: dict[str, Any] = {
        "runs": args.runs,
        "load_average_at_start": os.getloadavg(),
        "code": {side: loaded_from(side_env) for side, side_env in sides.items()},
    }

    try:
        first_ever = time_to_reply(serve, env, then_call=True)  # initdb + migrations, once per data dir
        store_notes(serve, env)
        time_to_reply(hello, env)  # warm the file cache for every server before timing
        for side_env in sides.values():
            time_to_reply(serve, side_env)
        hello_times: list[float] = []
        initialize: dict[str, list[float]] = {side: [] for side in sides}
        first_call: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(args.runs):
            hello_times.append(time_to_reply(hello, env)[0])
            for side, side_env in sides.items():
                initialized, called = time_to_reply(serve, side_env, then_call=True)
                initialize[side].append(initialized)
                assert called is not None
                first_call[side].append(called)
        first_search: dict[str, list[float]] = {side: [] for side in sides}
        later_searches: dict[str, list[float]] = {side: [] for side in sides}
        for run in range(args.search_runs):
            for side, side_env in sides.items():
                first, later = searches(serve, side_env, run, args.searches)
                first_search[side].append(first)
                later_searches[side].extend(later)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    report["hello_world_initialize"] = ms(hello_times)
    for side in sides:
        report[side] = {
            "engram_initialize": ms(initialize[side]),
            "engram_first_tool_result": ms(first_call[side]),
            "ratio_initialize_p50": round(statistics.median(initialize[side]) / statistics.median(hello_times), 3),
            "first_search": ms(first_search[side]),
            "later_searches": ms(later_searches[side]),
            "first_search_ratio": round(
                statistics.median(first_search[side]) / statistics.median(later_searches[side]), 2
            ),
        }
    if args.baseline:
        report["this_over_baseline"] = {
            name: round(statistics.median(values["this"]) / statistics.median(values["baseline"]), 3)
            for name, values in (
                ("initialize_p50", initialize),
                ("first_tool_result_p50", first_call),
                ("first_search_p50", first_search),
            )
        }
    report["first_start_on_a_new_data_dir"] = {
        "initialize_ms": round(first_ever[0] * 1000, 1),
        "first_tool_result_ms": round((first_ever[1] or 0) * 1000, 1),
    }
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
