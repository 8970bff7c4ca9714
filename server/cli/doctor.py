"""Looking at the database: `engram doctor` checks the settings, the data directory, the database and
pgvector, and says what is wrong; `engram sql` opens psql on it."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engram.server.settings import Settings, config_path
from engram.storage.errors import EngramError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    sql = commands.add_parser(
        "sql", parents=[common], help="open psql on Engram's database (extra arguments go to psql, e.g. -c 'SELECT 1')"
    )
    sql.set_defaults(run=_sql, passes_extra_arguments=True)

    doctor = commands.add_parser("doctor", parents=[common], help="check settings, data dir, database and pgvector")
    doctor.set_defaults(run=_doctor)


def _sql(settings: Settings, args: argparse.Namespace) -> int:
    import subprocess

    from engram.storage.database import prepare_schema, resolve_url
    from engram.storage.embedded import psql_command

    url, _embedded = resolve_url(settings.sqlalchemy_url(), settings.data_dir)
    prepare_schema(url)
    psql = psql_command(url.replace("postgresql+psycopg://", "postgresql://", 1))
    return subprocess.call([*psql, *args.extra_arguments])


def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    failures = 0
    for check in run_checks(settings, args.config):
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        failures += not check.ok
    return 1 if failures else 0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def run_checks(settings: Settings, config_file: Path | None) -> list[Check]:
    path, explicit = config_path(config_file, dict(os.environ))
    used = path is not None and (explicit or path.exists())
    checks = [Check("settings", True, f"read {path}" if used else f"defaults and environment (no {path})")]

    url = settings.sqlalchemy_url()
    if url is None:
        checks.append(_data_dir(settings.data_dir))
        if not checks[-1].ok:
            return checks
        from engram.storage.embedded import PG_SUBDIR, postmaster_pid, prune_handles, start_embedded, users

        pgdata = (settings.data_dir / PG_SUBDIR).expanduser().resolve()
        running = postmaster_pid(pgdata) is not None
        stale = prune_handles(pgdata) if running else []
        orphaned = running and not users(pgdata)
        try:
            embedded = start_embedded(settings.data_dir)
        except EngramError as exc:
            return [*checks, Check("embedded PostgreSQL", False, str(exc))]
        url = embedded.sqlalchemy_url
        others = [pid for pid in users(pgdata) if pid != os.getpid()]
        detail = f"running, data in {embedded.pgdata}; " + (
            f"used by Engram processes {', '.join(map(str, others))}" if others else "used by no other Engram process"
        )
        if stale:
            detail += f"; removed {len(stale)} processes that were gone from its users ({', '.join(map(str, stale))})"
        if orphaned:
            detail += "; no live Engram process was using it (left by a killed one): it stops when this check ends"
        checks.append(Check("embedded PostgreSQL", True, detail))
    return checks + _database(url, settings.embedding_model) + [_embedder(settings)]


def _embedder(settings: Settings) -> Check:
    import anyio

    from engram.storage.embeddings import make_embedder

    embedder = make_embedder(settings.embedding_provider, settings.embedding_model, settings.data_dir / "models")
    try:
        [vector] = anyio.run(embedder.embed, ["engram doctor"])
    except EngramError as exc:
        return Check("embedding model", False, str(exc))
    return Check(
        "embedding model", True, f"{settings.embedding_model} ({settings.embedding_provider}), {len(vector)} dimensions"
    )


def _data_dir(data_dir: Path) -> Check:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        return Check("data_dir", False, f"{data_dir} is not writable ({exc}); set data_dir or ENGRAM_DATA_DIR")
    return Check("data_dir", True, f"{data_dir} is writable")


def _database(url: str, embedding_model: str) -> list[Check]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    from engram.storage.database import MAY_CREATE_VECTOR, redact
    from engram.storage.errors import first_line
    from engram.storage.migrate import current_revision
    from engram.storage.migrations import HEAD

    engine = create_engine(url, poolclass=NullPool)
    checks: list[Check] = []
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
            checks.append(Check("database", True, f"PostgreSQL {version} at {redact(url)}"))
            installed = connection.execute(text("SELECT extversion FROM pg_extension WHERE extname='vector'")).scalar()
            available = connection.execute(
                text("SELECT default_version FROM pg_available_extensions WHERE name='vector'")
            ).scalar()
            if installed:
                checks.append(Check("pgvector", True, f"version {installed} installed"))
            elif available and connection.execute(text(MAY_CREATE_VECTOR)).scalar():
                checks.append(Check("pgvector", True, f"version {available} available; installed at first start"))
            elif available:
                checks.append(
                    Check(
                        "pgvector",
                        False,
                        f"version {available} available but not installed, and this user may not install it; ask an "
                        "administrator to run 'CREATE EXTENSION vector;' in this database",
                    )
                )
            else:
                checks.append(Check("pgvector", False, "not available on this server; install pgvector there"))
            revision = current_revision(connection)
            if revision == HEAD:
                agents = connection.execute(text("SELECT count(*) FROM agents")).scalar()
                blocks = connection.execute(text("SELECT count(*) FROM blocks")).scalar()
                checks.append(Check("schema", True, f"revision {revision} (current); {agents} agents, {blocks} blocks"))
                stale = connection.execute(
                    text("SELECT count(*) FROM passages WHERE embedding_model IS DISTINCT FROM :model"),
                    {"model": embedding_model},
                ).scalar()
                total = connection.execute(text("SELECT count(*) FROM passages")).scalar()
                checks.append(
                    Check(
                        "archival embeddings",
                        not stale,
                        f"{total} passages, {stale} not embedded with "
                        f"{embedding_model}" + ("; run 'engram reindex'" if stale else ""),
                    )
                )
                stale, waiting, total = connection.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE embedding_model <> :model), "
                        "count(*) FILTER (WHERE embedding_model IS NULL), count(*) FROM messages"
                    ),
                    {"model": embedding_model},
                ).one()
                checks.append(
                    Check(
                        "recall embeddings",
                        not stale,
                        f"{total} messages, {waiting} waiting to be embedded"
                        + (" (a running 'engram serve' embeds them, or 'engram reindex' now)" if waiting else "")
                        + f", {stale} embedded with another model than {embedding_model}"
                        + ("; run 'engram reindex'" if stale else ""),
                    )
                )
            elif revision is None:
                checks.append(Check("schema", True, "not created yet; 'engram serve' creates it at start"))
            else:
                checks.append(Check("schema", True, f"revision {revision}; 'engram serve' migrates it to {HEAD}"))
    except DBAPIError as exc:
        checks.append(Check("database", False, f"cannot connect to {redact(url)}: {first_line(exc.orig)}"))
    finally:
        engine.dispose()
    return checks
