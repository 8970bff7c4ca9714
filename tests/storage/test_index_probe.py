"""Writes decide when an agent outgrows exact scans (and gets the HNSW index) without counting its rows on
every write: one probe, then the rows they add, until the count nears the limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from engram.storage import agents, passages, search
from engram.storage.database import open_database
from engram.storage.principals import ensure_principal

pytestmark = pytest.mark.anyio

LIMIT = 8
MODEL = "test-model"
INDEX = "ix_passages_embedding_3"


def unit(n: int) -> list[float]:
    return [1.0, float(n % 7) / 10, 0.0]


async def test_writes_probe_an_agents_size_once_then_count_what_they_add(database_url: str, tmp_path: Path) -> None:
    database = open_database(database_url, tmp_path)
    probes: list[str] = []

    def seen(_connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith("SELECT count(*) FROM (SELECT 1 FROM passages"):
            probes.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with database.sessions.begin() as session:
            owner = await ensure_principal(session, "local")
            agent = await agents.insert_if_absent(session, owner, "probed")
            assert agent is not None

        async def write(n: int, count: int = 1) -> None:
            async with database.sessions.begin() as session:
                rows = [passages.NewPassage(text=f"note {n} {k}", embedding=unit(n + k)) for k in range(count)]
                await passages.insert_many(session, owner, agent.id, MODEL, rows)
                await search.index_when_large(
                    session, "passages", [agent.id] * count, model=MODEL, dimension=3, exact_scan_limit=LIMIT
                )

        async def indexed() -> bool:
            async with database.sessions.begin() as session:
                found = await session.execute(text("SELECT 1 FROM pg_indexes WHERE indexname = :i"), {"i": INDEX})
                return found.first() is not None

        await write(0)
        assert len(probes) == 1  # the first write counts the agent's rows: 1
        for n in range(1, LIMIT):
            await write(n)
        assert len(probes) == 1  # the next seven are counted, not probed: 8, at the limit
        assert not await indexed()
        await write(LIMIT, count=2)  # past the limit by this process's count: probed, found large, indexed
        assert len(probes) == 2
        assert await indexed()
    finally:
        await database.close()
