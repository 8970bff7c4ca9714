"""Shared fixtures: one embedded PostgreSQL for the session, a fresh database per test, real MCP clients."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client
from mcp_types import CallToolResult
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from server.app import build_server
from server.settings import Settings, load_settings
from storage.database import prepare_schema
from storage.embedded import EmbeddedPostgres, start_embedded

TEMPLATE = "engram_template"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests run under anyio's plugin (`pytestmark = pytest.mark.anyio`), whose fixtures share the
    test's task: an MCP client opened in a fixture must be closed in the task that opened it."""
    return "asyncio"


_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedPostgres:
    """The embedded server, in a temporary data dir, with a migrated template database."""
    embedded = start_embedded(tmp_path_factory.mktemp("engram-data"))
    admin(embedded, f"CREATE DATABASE {TEMPLATE}")
    prepare_schema(database_url_for(embedded, TEMPLATE))
    return embedded


@pytest.fixture
def database_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A fresh, migrated database for one test (a copy of the template), dropped afterwards."""
    with temporary_database(postgres, template=TEMPLATE) as url:
        yield url


@contextmanager
def temporary_database(embedded: EmbeddedPostgres, *, template: str | None) -> Iterator[str]:
    """A new database on the session's server (empty, or a copy of `template`); dropped on exit."""
    name = f"engram_test_{next(_numbers)}"
    admin(embedded, f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    try:
        yield database_url_for(embedded, name)
    finally:
        admin(embedded, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        overrides={"database_url": database_url, "data_dir": str(tmp_path / "unused-data-dir")}, environ={}
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as connected:
        yield connected


def database_url_for(embedded: EmbeddedPostgres, name: str) -> str:
    return embedded.sqlalchemy_url.replace("/postgres?", f"/{name}?", 1)


def admin(embedded: EmbeddedPostgres, statement: str) -> None:
    engine = create_engine(embedded.sqlalchemy_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured result (or {'text': ...} for text results)."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {error_text(result)}"
    if result.structured_content is not None:
        structured = dict(result.structured_content)
        return (
            structured
            if set(structured) != {"result"} or not isinstance(structured["result"], str)
            else {"text": structured["result"]}
        )
    return {"text": error_text(result)}


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; return the error message the model would read."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed but returned {result.content}"
    return error_text(result)


def error_text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def as_json(text_value: str) -> Any:
    return json.loads(text_value)
