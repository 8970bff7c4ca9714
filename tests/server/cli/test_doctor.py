"""`engram doctor` and `engram sql`."""

from __future__ import annotations

from pathlib import Path

import pytest

from engram.server.cli import main


def test_doctor_reports_each_check(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    for line in (
        "ok    settings",
        "ok    database: PostgreSQL 18",
        "ok    pgvector: version",
        "ok    schema: revision",
        "ok    recall embeddings: 0 messages, 0 waiting",
    ):
        assert line in out


def test_doctor_names_an_unreachable_database_without_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--database-url", "postgresql://engram:s3cret@127.0.0.1:9/engram"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  database: cannot connect to postgresql+psycopg://engram:***@127.0.0.1:9/engram" in out
    assert "s3cret" not in out


def test_doctor_checks_the_embedded_server_in_the_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"ok    data_dir: {tmp_path} is writable" in out
    assert "ok    embedded PostgreSQL: running" in out
    assert "ok    schema: not created yet" in out


def test_sql_runs_psql_on_the_database_with_the_arguments_it_does_not_know(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "create", "seen", "--database-url", database_url]) == 0
    capfd.readouterr()
    assert main(["sql", "--database-url", database_url, "-tA", "-c", "SELECT name FROM agents"]) == 0
    assert capfd.readouterr().out.strip() == "seen"
