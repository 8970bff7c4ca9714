"""The embedded PostgreSQL looks after itself (issue 16): a process killed by any signal does not keep it running
for ever, every command leaves on SIGTERM, SIGINT and SIGHUP, `engram db` says who uses it and stops it, and a
server that died under a running `engram serve` starts again at the next call. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from engram.server.cli import main
from engram.storage.embedded import PG_SUBDIR, postmaster_pid, release, start_embedded, users
from tests.conftest import call, engram_command, minimal_environment

JOIN = (
    "import sys, time; from pathlib import Path; from engram.storage.embedded import start_embedded; "
    "start_embedded(Path(sys.argv[1])); print('joined', flush=True); time.sleep(600)"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data dir for the module (initdb once); every test leaves its server stopped."""
    path = tmp_path_factory.mktemp("lifecycle")
    release(start_embedded(path))
    yield path


def pgdata(data_dir: Path) -> Path:
    return (data_dir / PG_SUBDIR).resolve()


def joined(data_dir: Path) -> subprocess.Popen[str]:
    """A process that starts (or joins) the embedded server and waits."""
    process = subprocess.Popen([sys.executable, "-c", JOIN, str(data_dir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "joined\n"
    return process


def stop(process: subprocess.Popen[str]) -> None:
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def engram(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {**minimal_environment(), "ENGRAM_DATA_DIR": str(data_dir)}
    return subprocess.run([engram_command(), *args], env=environment, capture_output=True, text=True, timeout=120)


def test_a_killed_process_is_pruned_and_the_next_clean_exit_stops_the_server(data_dir: Path) -> None:
    process = joined(data_dir)
    process.send_signal(signal.SIGKILL)
    stop(process)
    assert postmaster_pid(pgdata(data_dir)) is not None  # nothing stopped it: the killed process had no say
    status = engram("db", "status", data_dir=data_dir)
    assert "no live Engram process uses it; removed 1 gone processes from its users" in status.stdout
    doctor = engram("doctor", data_dir=data_dir)
    assert "no live Engram process was using it (left by a killed one)" in doctor.stdout
    assert postmaster_pid(pgdata(data_dir)) is None  # doctor was its last user, and stopped it on leaving


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_command_stopped_by_a_signal_releases_the_server(data_dir: Path, signum: signal.Signals) -> None:
    environment = {**minimal_environment(), "ENGRAM_DATA_DIR": str(data_dir)}
    server = subprocess.Popen(
        [engram_command(), "serve"], env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        with anyio.from_thread.start_blocking_portal() as portal:
            portal.call(_wait_for_users, pgdata(data_dir), server.pid)
        server.send_signal(signum)
        assert server.wait(timeout=30) == 128 + signum
    finally:
        if server.poll() is None:
            server.kill()
        for stream in (server.stdin, server.stdout):
            if stream is not None:
                stream.close()
    assert postmaster_pid(pgdata(data_dir)) is None
    assert users(pgdata(data_dir)) == []


async def _wait_for_users(path: Path, pid: int) -> None:
    with anyio.fail_after(60):
        while True:
            if pid in users(path):
                return
            # the subprocess starts the server in the background; polled often, so that the signal often
            # arrives while it is still starting (a first start then tunes the server)
            await anyio.sleep(0.01)


def test_db_stop_refuses_while_a_process_uses_the_server_unless_forced(data_dir: Path) -> None:
    process = joined(data_dir)
    try:
        refused = engram("db", "stop", data_dir=data_dir)
        assert refused.returncode == 1
        assert f"Engram processes {process.pid} use the embedded PostgreSQL" in refused.stderr
        assert postmaster_pid(pgdata(data_dir)) is not None
        forced = engram("db", "stop", "--force", data_dir=data_dir)
        assert forced.returncode == 0 and "stopped the embedded PostgreSQL" in forced.stdout
        assert postmaster_pid(pgdata(data_dir)) is None
    finally:
        process.kill()
        stop(process)
    assert engram("db", "stop", data_dir=data_dir).stdout.endswith("was not running\n")


def test_db_commands_refuse_an_external_database(database_url: str) -> None:
    assert main(["db", "status", "--database-url", database_url]) == 1


@pytest.mark.anyio
async def test_a_server_that_died_under_engram_serve_starts_again_at_the_next_call(data_dir: Path) -> None:
    environment = {**minimal_environment(), "ENGRAM_DATA_DIR": str(data_dir)}
    parameters = StdioServerParameters(command=engram_command(), args=["serve"], env=environment)
    async with Client(parameters, mode="legacy") as client:
        await call(client, "core_memory_append", label="human", content="Likes tea.")
        postmaster = postmaster_pid(pgdata(data_dir))
        assert postmaster is not None
        os.kill(postmaster, signal.SIGKILL)
        await _until(lambda: postmaster_pid(pgdata(data_dir)) != postmaster)  # the kill lands asynchronously
        shown = await call(client, "core_memory_view")
        assert "Likes tea." in shown["text"]
        assert postmaster_pid(pgdata(data_dir)) not in (None, postmaster)
    await _until(lambda: postmaster_pid(pgdata(data_dir)) is None)  # it stops when serve, its last user, exits


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(30):
        while True:
            if condition():
                return
            await anyio.sleep(0.05)
