"""Migrations: HEAD matches Alembic's scripts, concurrent starts on an empty database are safe, an existing
database upgrades in place, and the ORM describes the migrated schema."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from engram.storage import migrations
from engram.storage.database import prepare_schema
from engram.storage.embedded import EmbeddedPostgres
from engram.storage.migrate import alembic_head
from engram.storage.migrations import HEAD
from engram.storage.schema import Base
from tests.conftest import temporary_database

AGENT_COLUMNS = ["id", "owner_id", "name", "description", "system", "llm", "created_at", "updated_at"]  # at 0006


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


def migrate_to(connection: Connection, action: str, revision: str) -> None:
    """Run Alembic's upgrade or downgrade to `revision` on the connection, as storage.migrate runs it."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)
    connection.commit()


def agent_columns(connection: Connection) -> list[str]:
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'agents' ORDER BY ordinal_position"
    return list(connection.execute(text(columns)).scalars())


def test_a_database_at_0005_upgrades_in_place_dropping_the_agent_columns_nothing_used(empty_database: str) -> None:
    engine = create_engine(empty_database, poolclass=NullPool)
    with engine.connect() as connection:
        migrate_to(connection, "upgrade", "0005")
        connection.execute(text("INSERT INTO principals (id, name) VALUES (gen_random_uuid(), 'local')"))
        connection.execute(
            text(
                "INSERT INTO agents (id, owner_id, name, embedding_model, metadata) "
                "SELECT gen_random_uuid(), id, 'kept', 'some/model', '{\"a\": 1}' FROM principals"
            )
        )
        connection.commit()
    assert prepare_schema(empty_database) is True
    with engine.connect() as connection:
        assert agent_columns(connection) == [*AGENT_COLUMNS, "tags"]
        assert connection.execute(text("SELECT name FROM agents")).scalars().all() == ["kept"]
        migrate_to(connection, "downgrade", "0005")
        assert agent_columns(connection) == [*AGENT_COLUMNS, "embedding_model", "metadata"]
        assert connection.execute(text("SELECT embedding_model, metadata FROM agents")).one() == (None, {})
    engine.dispose()


def test_a_database_at_0006_upgrades_in_place_giving_its_agents_no_tags(empty_database: str) -> None:
    engine = create_engine(empty_database, poolclass=NullPool)
    with engine.connect() as connection:
        migrate_to(connection, "upgrade", "0006")
        connection.execute(text("INSERT INTO principals (id, name) VALUES (gen_random_uuid(), 'local')"))
        connection.execute(
            text("INSERT INTO agents (id, owner_id, name) SELECT gen_random_uuid(), id, 'kept' FROM principals")
        )
        connection.commit()
    assert prepare_schema(empty_database) is True
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name, tags FROM agents")).one() == ("kept", [])
        migrate_to(connection, "downgrade", "0006")
        assert agent_columns(connection) == AGENT_COLUMNS
    engine.dispose()


def test_a_database_at_0007_upgrades_in_place_its_blocks_made_with_agents_not_standalone(empty_database: str) -> None:
    engine = create_engine(empty_database, poolclass=NullPool)
    with engine.connect() as connection:
        migrate_to(connection, "upgrade", "0007")
        connection.execute(text("INSERT INTO principals (id, name) VALUES (gen_random_uuid(), 'local')"))
        connection.execute(
            text(
                "INSERT INTO blocks (id, owner_id, label, char_limit) "
                "SELECT gen_random_uuid(), id, 'human', 100 FROM principals"
            )
        )
        connection.commit()
    assert prepare_schema(empty_database) is True
    with engine.connect() as connection:
        assert connection.execute(text("SELECT label, standalone FROM blocks")).one() == ("human", False)
        migrate_to(connection, "downgrade", "0007")
        assert connection.execute(text("SELECT label FROM blocks")).scalars().all() == ["human"]
    engine.dispose()


def test_the_orm_tables_and_columns_match_the_migrated_schema(database_url: str) -> None:
    def declared_or_compared(item: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        # Indexes made only by migrations (and by ensure_vector_index) serve queries; the ORM need not declare them.
        return not (kind == "index" and reflected and compare_to is None)

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": declared_or_compared})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []
