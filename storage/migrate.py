"""Apply Alembic migrations at start, under a PostgreSQL advisory lock so concurrent starts are safe."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, text

from engram.storage.migrations import HEAD

# An arbitrary constant that names "Engram's schema migration" among advisory locks.
MIGRATION_LOCK_KEY = 0x656E6772616D


def current_revision(connection: Connection) -> str | None:
    exists = connection.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar()
    if not exists:
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(connection: Connection) -> bool:
    """Bring the schema to HEAD. Returns True if a migration ran. The connection must not be in a transaction."""
    if current_revision(connection) == HEAD:
        connection.rollback()
        return False
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        if current_revision(connection) == HEAD:  # another process migrated while we waited for the lock
            connection.rollback()
            return False
        connection.rollback()
        _run_alembic(connection)
        return True
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


def _run_alembic(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    connection.commit()


def alembic_head() -> str | None:
    """The head revision as Alembic computes it from the scripts (HEAD must match it)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()
