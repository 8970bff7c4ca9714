"""`engram agents list|create|show|delete`."""

from __future__ import annotations

import pytest

from engram.server.cli import main


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
