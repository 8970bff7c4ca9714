"""The embedded PostgreSQL: tuned for vector search, and released when its last user leaves."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.storage.embedded import release, start_embedded


def test_the_embedded_server_is_tuned_from_its_second_start(tmp_path: Path) -> None:
    first = start_embedded(tmp_path)
    release(first)
    second = start_embedded(tmp_path)
    try:
        engine = create_engine(second.sqlalchemy_url, poolclass=NullPool)
        with engine.connect() as connection:
            assert connection.execute(text("SHOW shared_buffers")).scalar() == "1GB"
            assert connection.execute(text("SHOW maintenance_work_mem")).scalar() == "512MB"
        engine.dispose()
    finally:
        release(second)
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
