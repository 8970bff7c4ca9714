"""Opening the database: the embedded server or an external URL, pgvector checked, schema migrated."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from engram.storage import migrate
from engram.storage.embedded import EmbeddedPostgres, keep_running, start_embedded
from engram.storage.errors import BackendUnavailableError, first_line
from engram.storage.migrations import HEAD
from engram.storage.search import CACHE_KEY, SearchCache

log = logging.getLogger(__name__)

# Whether the current user may run CREATE EXTENSION vector: a superuser may; otherwise only a trusted extension,
# with CREATE on the database.
MAY_CREATE_VECTOR = (
    "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR ("
    "COALESCE((SELECT bool_or(trusted) FROM pg_available_extension_versions WHERE name = 'vector'), false) "
    "AND has_database_privilege(current_database(), 'CREATE'))"
)


@dataclass(frozen=True)
class Database:
    """An open database: the async engine, its session factory, the embedded server if one is used, and
    what search has learnt about it (every session of the factory carries it)."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    embedded: EmbeddedPostgres | None
    search_cache: SearchCache

    async def close(self) -> None:
        await self.engine.dispose()


def resolve_url(database_url: str | None, data_dir: Path) -> tuple[str, EmbeddedPostgres | None]:
    """The SQLAlchemy URL to use, starting the embedded server when no URL is given. Blocking."""
    if database_url:
        return database_url, None
    embedded = start_embedded(data_dir)
    return embedded.sqlalchemy_url, embedded


def prepare_schema(url: str) -> bool:
    """Check pgvector and apply migrations (blocking, synchronous). Returns True if a migration ran."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if not connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first():
                available = connection.execute(
                    text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
                ).first()
                connection.rollback()
                if not available:
                    raise BackendUnavailableError(
                        f"the PostgreSQL at {redact(url)} has no pgvector extension; install pgvector "
                        "there (https://github.com/pgvector/pgvector) or unset ENGRAM_DATABASE_URL to use "
                        "the embedded server"
                    )
                if not connection.execute(text(MAY_CREATE_VECTOR)).scalar():
                    raise BackendUnavailableError(
                        f"the database at {redact(url)} has pgvector available but not installed, and its user may "
                        "not install it; ask an administrator to run 'CREATE EXTENSION vector;' in that database "
                        "(as a superuser or the database owner), then start Engram again"
                    )
            connection.rollback()
            ran = migrate.upgrade(connection)
            if ran:
                log.info("database schema migrated to revision %s", HEAD)
            return ran
    except DBAPIError as exc:
        raise BackendUnavailableError(
            f"cannot use the database at {redact(url)}: {first_line(exc.orig)}; check the URL, that the "
            "server is running and that the user may create tables"
        ) from exc
    finally:
        engine.dispose()


def open_database(database_url: str | None, data_dir: Path, *, pool_size: int = 5) -> Database:
    """Start or reach PostgreSQL, make sure the schema is current, and return an async engine. Blocking."""
    url, embedded = resolve_url(database_url, data_dir)
    prepare_schema(url)
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)
    if embedded is not None:
        revive = embedded

        @event.listens_for(engine.sync_engine, "do_connect")
        def start_again_if_dead(*_args: object) -> None:  # the pool's pre-ping met a dead server: reconnecting
            keep_running(revive)

    cache = SearchCache()
    return Database(
        engine=engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False, info={CACHE_KEY: cache}),
        embedded=embedded,
        search_cache=cache,
    )


def redact(url: str) -> str:
    """The URL without its password, safe for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
