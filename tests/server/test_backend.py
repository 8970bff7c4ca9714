"""The database opens in the background: the server answers at once, and a broken database is explained."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mcp.client.client import Client

from engram.server.app import build_server
from engram.server.settings import load_settings
from tests.conftest import call_error

pytestmark = pytest.mark.anyio


async def test_unreachable_database_is_explained_by_every_tool_without_the_password(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"database_url": "postgresql://engram:s3cret@127.0.0.1:9/engram", "data_dir": str(tmp_path)},
        environ={},
    )
    async with Client(build_server(settings)) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} >= {"core_memory_view"}
        message = await call_error(client, "core_memory_append", label="human", content="x")
    # what failed, where (the password hidden), PostgreSQL's own reason in between, and what to do
    assert message.startswith(
        "the database is not available: cannot use the database at postgresql+psycopg://engram:***@127.0.0.1:9/engram: "
    )
    assert message.endswith(
        "; check the URL, that the server is running and that the user may create tables; fix it and restart Engram "
        "('engram doctor' checks it)"
    )
    assert "s3cret" not in message


def test_defining_the_server_imports_no_database_or_model_libraries() -> None:
    """`engram serve` answers initialize before SQLAlchemy loads; heavy libraries load only when used."""
    probe = (
        "import sys, engram.server.app, engram.server.cli; "
        "print(sorted(m for m in ('sqlalchemy', 'psycopg', 'alembic', 'litellm', 'fastembed') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "[]"
