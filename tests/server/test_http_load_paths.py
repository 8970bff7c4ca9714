"""The HTTP request path under load: stored tokens are checked from a cache that a revocation empties at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp

from engram.server.cli import main
from engram.server.http import build_http_app
from engram.server.settings import load_settings
from engram.storage.database import open_database
from engram.storage.tokens import TokenCache, create
from tests.server.test_http import MCP_HEADERS, asgi_http, lifespan

pytestmark = pytest.mark.anyio

LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


async def store_token(database_url: str, name: str, principal: str) -> str:
    database = await anyio.to_thread.run_sync(open_database, database_url, Path("unused"))
    try:
        async with database.sessions.begin() as session:
            return await create(session, name, principal)
    finally:
        await database.close()


@asynccontextmanager
async def stored_token_app(database_url: str, tmp_path: Path, cache: TokenCache) -> AsyncIterator[ASGIApp]:
    """The app `engram serve --transport http` runs (stateless, in this process), checking stored tokens
    through `cache`, once its listener for revocations is connected."""
    settings = load_settings(
        overrides={"database_url": database_url, "data_dir": str(tmp_path), "http_stateless": True},
        environ={},
    )
    app = build_http_app(settings, require_tokens=True, token_cache=cache)
    async with lifespan(app):
        with anyio.fail_after(30):
            await cache.wait_listening()
        yield app


async def list_tools(app: ASGIApp, token: str) -> int:
    async with asgi_http(app, token) as http:
        return (await http.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)).status_code


@contextmanager
def token_queries() -> Iterator[list[str]]:
    """The statements any engine in this process sends that read the tokens table."""
    seen: list[str] = []

    def note(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM tokens" in statement or "JOIN tokens" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", note)


def revoke_by_hand(database_url: str, name: str) -> None:
    """A revocation made in SQL (no notification), as an operator could with `engram sql`."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE tokens SET revoked_at = now() WHERE name = :name"), {"name": name})
    finally:
        engine.dispose()


def listeners(database_url: str) -> list[int]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return list(
                connection.scalars(
                    text("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN engram_tokens_revoked%'")
                )
            )
    finally:
        engine.dispose()


def terminate(database_url: str, pids: list[int]) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            for pid in pids:
                # with a timeout, it returns once the backend has exited (its socket then closed)
                assert connection.scalar(text("SELECT pg_terminate_backend(:pid, 20000)"), {"pid": pid})
    finally:
        engine.dispose()


async def test_a_known_token_is_checked_without_a_database_query(database_url: str, tmp_path: Path) -> None:
    token = await store_token(database_url, "carol-laptop", "carol")
    async with stored_token_app(database_url, tmp_path, TokenCache()) as app:
        assert await list_tools(app, token) == 200
        with token_queries() as queries:
            for _ in range(5):
                assert await list_tools(app, token) == 200
        assert queries == []


async def test_a_revoked_token_is_refused_on_the_next_request_though_it_was_cached(
    database_url: str, tmp_path: Path
) -> None:
    token = await store_token(database_url, "carol-laptop", "carol")
    async with stored_token_app(database_url, tmp_path, TokenCache()) as app:
        assert await list_tools(app, token) == 200
        assert await list_tools(app, token) == 200  # from the cache
        arguments = ["tokens", "revoke", "carol-laptop", "--database-url", database_url]
        assert await anyio.to_thread.run_sync(main, arguments) == 0
        assert await list_tools(app, token) == 401


async def test_a_token_revoked_by_hand_in_sql_is_refused_once_the_cache_entry_is_old(
    database_url: str, tmp_path: Path
) -> None:
    now = [0.0]
    cache = TokenCache(max_age=10, clock=lambda: now[0])
    token = await store_token(database_url, "carol-laptop", "carol")
    async with stored_token_app(database_url, tmp_path, cache) as app:
        assert await list_tools(app, token) == 200
        await anyio.to_thread.run_sync(revoke_by_hand, database_url, "carol-laptop")
        now[0] = 9.9
        assert await list_tools(app, token) == 200  # cached: no notice was sent
        now[0] = 10.0
        assert await list_tools(app, token) == 401


async def test_when_the_listening_connection_is_lost_every_request_asks_the_database(
    database_url: str, tmp_path: Path
) -> None:
    cache = TokenCache()
    token = await store_token(database_url, "carol-laptop", "carol")
    async with stored_token_app(database_url, tmp_path, cache) as app:
        assert await list_tools(app, token) == 200
        pids = await anyio.to_thread.run_sync(listeners, database_url)
        assert len(pids) == 1
        await anyio.to_thread.run_sync(terminate, database_url, pids)
        await anyio.to_thread.run_sync(revoke_by_hand, database_url, "carol-laptop")
        assert await list_tools(app, token) == 401  # the cache saw its connection closed, so it asked
        with anyio.fail_after(30):
            await cache.wait_listening()  # and it listens again
        assert cache.listening


async def test_an_unknown_token_is_asked_of_the_database_each_time(database_url: str, tmp_path: Path) -> None:
    await store_token(database_url, "carol-laptop", "carol")
    async with stored_token_app(database_url, tmp_path, TokenCache()) as app:
        with token_queries() as queries:
            for _ in range(3):
                assert await list_tools(app, "engram_not-a-token") == 401
        assert len(queries) == 3
