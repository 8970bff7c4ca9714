"""Migrations: HEAD matches Alembic's scripts, and concurrent starts on an empty database are safe."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.storage.database import prepare_schema
from engram.storage.embedded import EmbeddedPostgres
from engram.storage.migrate import alembic_head
from engram.storage.migrations import HEAD
from tests.conftest import temporary_database


@pytest.fixture
def empty_database(postgres: EmbeddedPostgres) -> Iterator[str]:
    with temporary_database(postgres, template=None) as url:
        yield url


def test_head_constant_matches_the_alembic_scripts() -> None:
    assert alembic_head() == HEAD


def test_concurrent_starts_on_an_empty_database_migrate_exactly_once(empty_database: str) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        ran = list(pool.map(lambda _: prepare_schema(empty_database), range(4)))
    assert ran.count(True) == 1
    engine = create_engine(empty_database, poolclass=NullPool)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
        tables = set(connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        assert connection.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    engine.dispose()
    assert {"principals", "agents", "blocks", "agent_blocks", "block_history"} <= tables
    assert prepare_schema(empty_database) is False  # already current: nothing to do
