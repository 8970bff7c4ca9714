"""Shared fixtures: one embedded PostgreSQL for the session, a fresh database per test, real MCP clients."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.app import build_server
from engram.server.settings import Settings, load_settings
from engram.storage.database import prepare_schema
from engram.storage.embedded import EmbeddedPostgres, start_embedded

TEMPLATE = "engram_template"


SOME_DESELECTED = pytest.StashKey[bool]()


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    if items:
        items[0].config.stash[SOME_DESELECTED] = True


def pytest_collection_finish(session: pytest.Session) -> None:
    """The coverage floor (fail_under in pyproject.toml) is for the whole suite, as CI runs it: a run of
    some tests (named, or picked with -k, -m, --lf) prints their coverage without being held to it."""
    config = session.config
    asked = {(config.invocation_params.dir / argument).resolve() for argument in config.args}
    whole = asked == {Path(__file__).parent} and not config.stash.get(SOME_DESELECTED, False)
    if whole or config.getoption("cov_fail_under", None) is not None:  # or a floor asked for on the command line
        return
    coverage = config.pluginmanager.getplugin("_cov")  # pytest-cov's plugin, which checks the floor after the run
    if coverage is not None and getattr(coverage, "options", None) is not None:
        coverage.options.cov_fail_under = None


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


# What a host sees by default (the `memory` tool profile); server/app.py's TOOLS says which profile offers each tool.
MEMORY_TOOLS = {
    "memory_context",
    "core_memory_view",
    "core_memory_append",
    "core_memory_replace",
    "memory_insert",
    "memory_replace",
    "memory_rethink",
    "archival_memory_insert",
    "archival_memory_search",
    "conversation_record",
    "conversation_search",
    "send_message",
}


def every_tool() -> set[str]:
    """The names of every tool (the `full` profile), as tests/server/tool_contract.json pins them."""
    return set(json.loads((Path(__file__).parent / "server" / "tool_contract.json").read_text()))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a server on this test's database, offering every tool (the `full` profile), so that tests
    reach every tool; a test of another profile makes its own settings."""
    return load_settings(
        overrides={
            "database_url": database_url,
            "data_dir": str(tmp_path / "unused-data-dir"),
            "tool_profile": "full",
        },
        environ={},
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as connected:
        yield connected


@pytest.fixture(params=["memory", "stdio", "http"])
async def connection(request: pytest.FixtureRequest, settings: Settings, database_url: str) -> AsyncIterator[Client]:
    """A client of Engram over each transport in turn: in memory, `engram serve` over stdio, and over HTTP
    (every one offering every tool)."""
    if request.param == "memory":
        async with Client(build_server(settings)) as connected:
            yield connected
    elif request.param == "stdio":
        environment = {**minimal_environment(), "ENGRAM_DATABASE_URL": database_url}
        parameters = StdioServerParameters(command=engram_command(), args=["serve", "--tools", "full"], env=environment)
        async with Client(parameters, mode="legacy") as connected:
            yield connected
    else:
        async with engram_http(database_url) as base_url, http_client(base_url) as connected:
            yield connected


def engram_command() -> str:
    found = shutil.which("engram", path=str(Path(sys.executable).parent)) or shutil.which("engram")
    assert found, "the 'engram' command is not installed; run the README's install command first"
    return found


# Set by coverage (pyproject.toml: [tool.coverage.run] patch) so that it measures Python subprocesses too.
COVERAGE_VARIABLES = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def minimal_environment() -> dict[str, str]:
    """What a host passes a server it starts: little more than PATH and HOME (and, when the suite measures
    coverage, what lets coverage measure the server as well)."""
    return {key: os.environ[key] for key in ("PATH", "HOME", "LANG", *COVERAGE_VARIABLES) if key in os.environ}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def engram_http(
    database_url: str, *, environment: dict[str, str] | None = None, args: Sequence[str] = ()
) -> AsyncIterator[str]:
    """`engram serve --transport http --tools full` in a subprocess on a free port; yields its base URL once it
    answers."""
    port = free_port()
    command = [engram_command(), "serve", "--transport", "http", "--port", str(port), "--tools", "full", *args]
    env = {**minimal_environment(), "ENGRAM_DATABASE_URL": database_url, **(environment or {})}
    with tempfile.TemporaryFile() as log:
        process = await anyio.open_process(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        base_url = f"http://127.0.0.1:{port}"
        try:
            with anyio.fail_after(60):
                while not await _answers(base_url):
                    if process.returncode is not None:
                        log.seek(0)
                        raise AssertionError(f"engram serve exited: {log.read().decode()[-2000:]}")
                    await anyio.sleep(0.1)  # polling the port the subprocess is about to open
            yield base_url
        finally:
            process.terminate()
            with anyio.move_on_after(30):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _answers(base_url: str) -> bool:
    try:
        async with httpx2.AsyncClient() as probe:
            return (await probe.get(f"{base_url}/healthz")).status_code == 200
    except httpx2.TransportError:
        return False


@asynccontextmanager
async def http_client(base_url: str, token: str | None = None) -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP, sending the bearer token if given."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as connected,
    ):
        yield connected


def database_url_for(embedded: EmbeddedPostgres, name: str) -> str:
    return embedded.sqlalchemy_url.replace("/postgres?", f"/{name}?", 1)


def index_use(database_url: str, index: str) -> tuple[int, int]:
    """How many scans used `index`, and how many entries they returned, counted once every other session
    on the database has ended: a session reports its counts to PostgreSQL's statistics when it ends, so
    this waits for the sessions of servers that were just closed (up to 30 s each)."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            )
        with engine.begin() as connection:
            scans, entries = connection.execute(
                text("SELECT idx_scan, idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = :index"),
                {"index": index},
            ).one()
    finally:
        engine.dispose()
    return int(scans), int(entries)


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
    """Call a tool that must fail; return the error message the model reads, after the SDK's
    'Error executing tool NAME: ' (which every tool error starts with)."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed but returned {result.content}"
    message = error_text(result)
    prefix = f"Error executing tool {tool}: "
    assert message.startswith(prefix), message
    return message.removeprefix(prefix)


@dataclass(frozen=True)
class Invalid:
    """An argument the SDK refuses by the tool's schema before Engram runs: pydantic's message, inside its
    own framing, names the argument and says what it should be."""

    argument: str
    should: str  # pydantic's sentence, e.g. "Input should be greater than or equal to 1"

    def found_in(self, message: str) -> bool:
        return f"\n{self.argument}\n  {self.should} [" in message


def says(message: str, expected: str | Invalid) -> bool:
    """Whether a tool error is exactly the expected sentence (or, for a schema violation, holds its part)."""
    return expected.found_in(message) if isinstance(expected, Invalid) else message == expected


def error_text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def as_json(text_value: str) -> Any:
    return json.loads(text_value)
