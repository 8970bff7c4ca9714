"""Cold start of `engram serve` to its `initialize` reply, against a hello-world MCPServer started the same way.

Both are spawned as fresh processes, alternately, and timed from spawn to the first reply line on stdout.
Engram runs on the embedded PostgreSQL in a temporary data dir (created once before timing: initdb is a
one-time cost, reported separately). Prints JSON.

    python -m bench.startup [--runs 15]
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

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
}
FIRST_CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "core_memory_view", "arguments": {}},
}


def time_to_reply(command: list[str], env: dict[str, str], then_call: bool = False) -> tuple[float, float | None]:
    """Seconds from spawn to the initialize reply (and to the first tool result, if asked)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    assert process.stdin and process.stdout
    process.stdin.write(json.dumps(INITIALIZE) + "\n")
    process.stdin.flush()
    reply = process.stdout.readline()
    initialized = time.perf_counter() - start
    assert '"result"' in reply, reply
    first_call = None
    if then_call:
        process.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        process.stdin.write(json.dumps(FIRST_CALL) + "\n")
        process.stdin.flush()
        assert '"result"' in process.stdout.readline()
        first_call = time.perf_counter() - start
    process.stdin.close()
    process.wait(timeout=30)
    return initialized, first_call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    engram = shutil.which("engram")
    assert engram, "install Engram first (see README)"
    data_dir = Path(tempfile.mkdtemp(prefix="engram-bench-"))
    env = {**os.environ, "ENGRAM_DATA_DIR": str(data_dir)}
    env.pop("ENGRAM_DATABASE_URL", None)
    hello = [sys.executable, str(Path(__file__).with_name("hello_server.py"))]

    first_ever = time_to_reply([engram, "serve"], env, then_call=True)  # initdb + migrations, once per data dir
    time_to_reply(hello, env)  # warm the file cache for both before timing
    engram_times: list[float] = []
    engram_first_call: list[float] = []
    hello_times: list[float] = []
    for _ in range(args.runs):
        hello_times.append(time_to_reply(hello, env)[0])
        initialized, first_call = time_to_reply([engram, "serve"], env, then_call=True)
        engram_times.append(initialized)
        assert first_call is not None
        engram_first_call.append(first_call)
    shutil.rmtree(data_dir, ignore_errors=True)

    def ms(values: list[float]) -> dict[str, float]:
        return {"p50_ms": round(statistics.median(values) * 1000, 1), "min_ms": round(min(values) * 1000, 1)}

    print(
        json.dumps(
            {
                "runs": args.runs,
                "hello_world_initialize": ms(hello_times),
                "engram_initialize": ms(engram_times),
                "engram_first_tool_result": ms(engram_first_call),
                "ratio_initialize_p50": round(statistics.median(engram_times) / statistics.median(hello_times), 3),
                "first_start_on_a_new_data_dir": {
                    "initialize_ms": round(first_ever[0] * 1000, 1),
                    "first_tool_result_ms": round((first_ever[1] or 0) * 1000, 1),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
