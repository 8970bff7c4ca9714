"""Claude Code hook latency: `engram hook claude-code` as a command (process start to its output) and the
http hook at /hooks/claude-code, while `engram serve --transport http` keeps the embedded database up.

In a fresh data dir: the server starts; `engram import` gives agent 'bench' 300 messages of earlier
sessions; then every event is timed, command and http alike: SessionStart, UserPromptSubmit (the prompt is
recorded and the context for it retrieved) and Stop (the reply recorded), each in a session of its own so
that nothing is held back as already given; then the command with `--url` (a thin client of the same
server). Last, the command with no server running (the embedded
PostgreSQL starts and stops with it). Prints JSON: p50 and p95 in ms per event and door, and the load average.

With `--baseline ROOT`, another Engram is timed beside this one in the same run, alternately, event by event
(its own server on the next port, on the same data dir): ROOT holds `engram/{server,tools,storage}`, e.g.
HEAD's, unpacked with `git archive HEAD | tar -x -C OLD` and linked as ROOT/engram/server -> OLD/server, and
so on; it runs with PYTHONPATH=ROOT (the report says which files each side imported).

    python -m bench.hooks [--runs 15] [--http-runs 60] [--baseline ROOT]    # ~3 min on 2 cores (~6 with a baseline)
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
from pathlib import Path
from typing import Any

import httpx2

from bench.context import UNRELATED

TOPICS = [
    "the billing API moves to port 8443",
    "the flaky invoice test fails at midnight UTC",
    "staging migrations time out after 60 seconds",
    "the Halvard cutover is planned for March",
    "we pinned numpy below 2.0 for the old pandas",
    "the CSV export drops rows with empty emails",
]
PROMPTS = [
    "Which port does the billing API use now?",
    "Why did the invoice test fail last time?",
    "What did we decide about numpy versions?",
    "When is the Halvard cutover?",
    "Does the CSV export still drop rows?",
]


def engram() -> str:
    """The installed `engram` script itself (a version manager's shim would add its own start-up)."""
    script = Path(sys.executable).parent / "engram"
    return str(script) if script.exists() else "engram"


def history(path: Path, sessions: int = 50) -> Path:
    lines = []
    for number in range(sessions):
        topic = TOPICS[number % len(TOPICS)]
        for turn in range(3):
            user = f"Session {number}, step {turn}: remember that {topic}; what should we do about it?"
            reply = f"Noted for session {number}: {topic}. I suggest we check it again next week."
            for role, text in (("user", user), ("assistant", reply)):
                line = {"conversation": f"earlier-{number}", "role": role, "content": text}
                lines.append(json.dumps(line | {"created_at": f"2025-05-{1 + number % 28:02d}T10:00:00Z"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def events(run: int) -> dict[str, dict[str, Any]]:
    session = {"session_id": f"bench-{run}-{time.monotonic_ns()}", "transcript_path": "/dev/null", "cwd": "/tmp"}
    prompts = PROMPTS + UNRELATED[:5]
    return {
        "SessionStart": session | {"hook_event_name": "SessionStart", "source": "startup"},
        "UserPromptSubmit": session | {"hook_event_name": "UserPromptSubmit", "prompt": prompts[run % len(prompts)]},
        "Stop": session | {"hook_event_name": "Stop", "last_assistant_message": f"Done with step {run}."},
    }


def loaded_from(environment: dict[str, str]) -> str:
    """Where the `engram` package of this environment comes from (to tell a baseline from this code)."""
    probe = "import engram.server; print(engram.server.__file__)"
    return subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True).stdout.strip()


def command(event: dict[str, Any], environment: dict[str, str], *, url: str | None = None) -> float:
    """Milliseconds from spawning `engram hook claude-code` (through the server at `url`, if given) to its exit
    (its output written), checked."""
    started = time.perf_counter()
    finished = subprocess.run(
        [engram(), "hook", "claude-code", "--agent", "bench", *(["--url", url] if url else [])],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if finished.returncode != 0 or "engram hook:" in finished.stderr:
        raise RuntimeError(f"the hook failed: {finished.stderr[-500:]}")
    return elapsed


def http_hook(client: httpx2.Client, event: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = client.post("/hooks/claude-code", params={"agent": "bench"}, json=event)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
        "runs": len(ordered),
    }


def wait_for(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("engram serve exited")
        try:
            if httpx2.get(f"{base_url}/healthz").status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)  # polling the port the server is about to open
    raise RuntimeError("engram serve did not answer /healthz within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="command runs per event")
    parser.add_argument("--http-runs", type=int, default=60, help="http requests per event")
    parser.add_argument("--port", type=int, default=8293)
    parser.add_argument("--baseline", type=Path, help="a PYTHONPATH root with another Engram to time alongside")
    args = parser.parse_args()
    report: dict[str, Any] = {"engram": engram(), "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="engram-hooks-") as work:
        environment = {**os.environ, "ENGRAM_DATA_DIR": str(Path(work) / "data")}
        environment.pop("ENGRAM_DATABASE_URL", None)
        sides = {"this": environment}
        if args.baseline:
            sides["baseline"] = {**environment, "PYTHONPATH": str(args.baseline.resolve())}
        report["code"] = {side: loaded_from(env) for side, env in sides.items()}
        ports = {side: args.port + number for number, side in enumerate(sides)}
        servers = {
            side: subprocess.Popen(
                [engram(), "serve", "--transport", "http", "--port", str(ports[side])],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for side, env in sides.items()
        }
        try:
            for side, server in servers.items():
                wait_for(f"http://127.0.0.1:{ports[side]}", server)
            export = history(Path(work) / "history.jsonl")
            subprocess.run(
                [engram(), "import", str(export), "--agent", "bench"], env=environment, check=True, capture_output=True
            )
            timings: dict[str, dict[str, list[float]]] = {side: {name: [] for name in events(0)} for side in sides}
            for env in sides.values():
                command(events(0)["UserPromptSubmit"], env)  # the OS cache warm, as on a working machine
            for run in range(args.runs):
                for name, event in events(run).items():
                    for side, env in sides.items():
                        timings[side][name].append(command(event, env))
            for side in sides:
                report.setdefault(side, {})["command, server up"] = {
                    name: percentiles(values) for name, values in timings[side].items()
                }
            through = {name: [] for name in events(0)}  # --url: this checkout's thin client of its server
            for run in range(args.runs):
                for name, event in events(run).items():
                    through[name].append(command(event, environment, url=f"http://127.0.0.1:{ports['this']}"))
            report["this"]["command --url, through the server"] = {
                name: percentiles(values) for name, values in through.items()
            }
            clients = {side: httpx2.Client(base_url=f"http://127.0.0.1:{ports[side]}", timeout=30) for side in sides}
            try:
                for client in clients.values():
                    http_hook(client, events(0)["UserPromptSubmit"])  # an embedder not loaded yet is loaded now
                timings = {side: {name: [] for name in events(0)} for side in sides}
                for run in range(args.http_runs):
                    for name, event in events(run).items():
                        for side, client in clients.items():
                            timings[side][name].append(http_hook(client, event))
            finally:
                for client in clients.values():
                    client.close()
            for side in sides:
                report[side]["http hook"] = {name: percentiles(values) for name, values in timings[side].items()}
        finally:
            for server in servers.values():
                server.terminate()
            for server in servers.values():
                server.wait(timeout=60)
        cold: dict[str, list[float]] = {side: [] for side in sides}
        for run in range(3):
            for side, env in sides.items():
                cold[side].append(command(events(run)["UserPromptSubmit"], env))
        for side in sides:
            report[side]["command, no server (UserPromptSubmit)"] = percentiles(cold[side])
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
