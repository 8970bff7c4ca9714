"""The `engram` command an operator uses: agents, sql, doctor, and settings errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import main


def test_agents_create_list_show_delete(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]
    assert main(["agents", "create", "notes", "--description", "Research notes", "--human", "Name: Ada", *db]) == 0
    assert "created agent 'notes'" in capsys.readouterr().out
    assert main(["agents", "list", *db]) == 0
    assert "notes" in capsys.readouterr().out
    assert main(["agents", "show", "notes", *db]) == 0
    shown = capsys.readouterr().out
    assert "human: 9/5000 chars, version 1" in shown and "<value>\nName: Ada\n</value>" in shown
    assert main(["agents", "delete", "notes", "--yes", *db]) == 0
    assert "deleted agent 'notes' (2 blocks)" in capsys.readouterr().out
    assert main(["agents", "show", "notes", *db]) == 1
    assert "agent 'notes' does not exist" in capsys.readouterr().err


def test_agents_create_refuses_a_taken_name(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "create", "twice", "--database-url", database_url]) == 0
    assert main(["agents", "create", "twice", "--database-url", database_url]) == 1
    assert "agent 'twice' already exists" in capsys.readouterr().err


def test_doctor_reports_each_check(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    for line in (
        "ok    settings",
        "ok    database: PostgreSQL 18",
        "ok    pgvector: version",
        "ok    schema: revision",
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


def test_sql_runs_psql_on_the_database(database_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "create", "seen", "--database-url", database_url]) == 0
    capfd.readouterr()
    assert main(["sql", "--database-url", database_url, "-tA", "-c", "SELECT name FROM agents"]) == 0
    assert capfd.readouterr().out.strip() == "seen"


def test_invalid_setting_fails_at_start_naming_the_key_and_its_source(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "server.cli", "doctor"],
        env={"ENGRAM_BLOCK_CHAR_LIMIT": "lots", "ENGRAM_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "invalid setting 'block_char_limit' (from environment variable ENGRAM_BLOCK_CHAR_LIMIT)" in completed.stderr
    assert completed.stdout == ""


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err
