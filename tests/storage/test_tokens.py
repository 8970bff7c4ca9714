"""Bearer tokens never reach the local user's memory: the principal 'local' is reserved for it."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio.to_thread
import httpx2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.cli import main
from engram.storage import sha256_hex
from engram.storage.database import open_database
from engram.storage.tokens import principal_of
from tests.conftest import engram_http

RESERVED = (
    "principal 'local' is reserved for the local user (stdio, the CLI, and HTTP without tokens): a token for it "
    "would open that user's memory over HTTP; give the token another principal, such as the name of the person "
    "or service that uses it"
)
OLD_TOKEN = "engram_stored-before-local-was-reserved"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
}


def store_token_for_local(database_url: str, name: str, token: str) -> None:
    """What an older Engram could store: a token whose principal is 'local'."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO principals (id, name) VALUES (gen_random_uuid(), 'local') ON CONFLICT DO NOTHING")
            )
            connection.execute(
                text(
                    "INSERT INTO tokens (id, principal_id, name, token_hash) "
                    "SELECT gen_random_uuid(), id, :name, :hash FROM principals WHERE name = 'local'"
                ),
                {"name": name, "hash": sha256_hex(token)},
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "arguments", [["laptop", "--principal", "local"], ["local"]], ids=["principal-flag", "named-after-it"]
)
def test_a_token_for_the_local_principal_cannot_be_created(
    database_url: str, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    assert main(["tokens", "create", *arguments, "--database-url", database_url]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == f"engram: {RESERVED}"
    assert main(["tokens", "list", "--database-url", database_url]) == 0
    assert capsys.readouterr().out == "no tokens yet ('engram tokens create NAME' makes one)\n"


@pytest.mark.anyio
async def test_a_token_stored_for_local_before_the_name_was_reserved_is_refused_over_http(database_url: str) -> None:
    store_token_for_local(database_url, "old-laptop", OLD_TOKEN)
    async with engram_http(database_url) as base_url, httpx2.AsyncClient() as http:
        response = await http.post(
            f"{base_url}/mcp",
            json=INITIALIZE,
            headers={"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {OLD_TOKEN}"},
        )
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid or revoked token"


@pytest.mark.anyio
async def test_refusing_a_stored_token_for_local_logs_which_token_and_how_to_replace_it(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_token_for_local(database_url, "old-laptop", OLD_TOKEN)
    database = await anyio.to_thread.run_sync(open_database, database_url, tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="engram.storage.tokens"):
            async with database.sessions.begin() as session:
                assert await principal_of(session, OLD_TOKEN) is None
    finally:
        await database.close()
    assert caplog.messages == [
        "refused token 'old-laptop': it maps to the reserved principal 'local', the local user's memory; revoke it "
        "('engram tokens revoke old-laptop') and create one for another principal"
    ]
