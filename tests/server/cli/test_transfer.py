"""`engram agents export|import` in each format, with the report they print, and `engram backup` / `engram restore`
of the whole database with the embedded wheel's pg_dump and pg_restore."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.cli import main
from engram.storage.embedded import EmbeddedPostgres
from tests.conftest import temporary_database


def engram(database_url: str, *args: str) -> int:
    return main([*args, "--database-url", database_url])


def query(database_url: str, statement: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(statement))]
    finally:
        engine.dispose()


def notes_agent(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "kickoff.md").write_text("# Kickoff\n\nWe chose Postgres for the storage layer.\n")
    assert engram(database_url, "agents", "create", "notes", "--human", "Name: Ada", "--tags", "work") == 0
    assert engram(database_url, "ingest", "notes", str(tmp_path / "docs")) == 0
    assert engram(database_url, "record", "--agent", "notes", "The kickoff moved to Thursday.") == 0


def test_export_and_import_in_engrams_format_report_what_they_moved(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes_agent(database_url, tmp_path)
    target = tmp_path / "notes.engram.zip"
    capsys.readouterr()
    assert engram(database_url, "agents", "export", "notes", "-o", str(target), "--with-vectors") == 0
    assert capsys.readouterr().out == (
        f"exported 'notes' to {target}: 1 agents, 2 blocks, 1 passages, 1 conversations, 1 messages (1 vectors)\n"
    )
    assert not list(tmp_path.glob(".*.partial"))
    with zipfile.ZipFile(target) as archive:
        assert json.loads(archive.read("manifest.json"))["agents"] == ["notes"]

    assert engram(database_url, "agents", "import", str(target)) == 1
    assert capsys.readouterr().err == (
        "engram: agent 'notes' already exists; import it under another name (--as NAME) or replace the existing "
        "agent (--replace)\n"
    )
    assert engram(database_url, "agents", "import", str(target), "--as", "notes-2") == 0
    assert capsys.readouterr().out == (
        "imported 'notes-2' from an Engram agent file: 2 blocks, 1 passages, 1 conversations, 1 messages\n"
        "embedded 1 passages and messages\n"  # the recorded message had no vector yet: no server embedded it
    )
    assert engram(database_url, "agents", "import", str(target), "--replace") == 0
    assert capsys.readouterr().out.startswith("imported 'notes' from an Engram agent file: 2 blocks, 1 passages")
    names = query(database_url, "SELECT name, tags FROM agents ORDER BY name")
    assert names == [("notes", ["work"]), ("notes-2", ["work"])]


def test_export_as_a_letta_file_says_archival_passages_are_left_out_and_imports_back(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes_agent(database_url, tmp_path)
    target = tmp_path / "notes.af"
    capsys.readouterr()
    assert engram(database_url, "agents", "export", "notes", "-o", str(target), "--format", "af") == 0
    assert capsys.readouterr().out == (
        f"exported 'notes' to {target}: 2 blocks, 1 messages (Letta's .af format); 1 archival passages left out: "
        "Letta's agent files have no archival memory (--format engram keeps them)\n"
    )
    exported = json.loads(target.read_text())
    assert [agent["name"] for agent in exported["agents"]] == ["notes"]
    assert engram(database_url, "agents", "export", "notes", "-o", str(target), "--format", "af", "--with-vectors") == 1
    assert "--with-vectors is for --format engram" in capsys.readouterr().err
    assert engram(database_url, "agents", "import", str(target), "--as", "from-letta") == 0
    assert (
        capsys.readouterr().out
        == "imported 'from-letta' from a Letta agent file: 2 blocks, 1 conversations, 1 messages\n"
    )


def test_import_of_a_memory_graph_needs_a_name_and_adds_only_what_is_new(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = tmp_path / "memory.jsonl"
    graph.write_text(
        json.dumps({"type": "entity", "name": "Ada", "entityType": "person", "observations": ["Likes trains"]})
        + "\n"
        + json.dumps({"type": "relation", "from": "Ada", "to": "Acme", "relationType": "works_at"})
        + "\n"
    )
    assert engram(database_url, "agents", "import", str(graph)) == 1
    assert f"engram: {graph} is a memory graph, which names no agent; pass --as NAME" in capsys.readouterr().err
    assert engram(database_url, "agents", "import", str(graph), "--as", "people") == 0
    assert capsys.readouterr().out == "imported 'people' from a memory graph: 2 passages\n"
    assert engram(database_url, "agents", "import", str(graph), "--as", "people") == 0
    assert capsys.readouterr().out == (
        "imported 'people' from a memory graph: nothing new\nskipped 2 entities and relations already stored\n"
    )
    assert engram(database_url, "agents", "import", str(tmp_path / "missing.jsonl")) == 1
    assert "cannot read" in capsys.readouterr().err


def test_backup_and_restore_bring_the_whole_database_back(
    database_url: str, postgres: EmbeddedPostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes_agent(database_url, tmp_path)
    backup = tmp_path / "engram.backup"
    capsys.readouterr()
    assert engram(database_url, "backup", "-o", str(backup)) == 0
    assert capsys.readouterr().out.startswith(f"backed up 1 agents, 1 passages and 1 messages to {backup} (")
    state = (
        "SELECT a.name, b.label, b.value FROM agents a JOIN agent_blocks ab ON ab.agent_id = a.id "
        "JOIN blocks b ON b.id = ab.block_id ORDER BY 1, 2"
    )
    before = query(database_url, state)

    assert engram(database_url, "agents", "delete", "notes", "--yes") == 0
    assert engram(database_url, "agents", "create", "other") == 0
    capsys.readouterr()
    assert engram(database_url, "restore", str(backup)) == 1
    assert capsys.readouterr().err == (
        "engram: the database holds memory already (1 agents, 0 passages, 0 messages); pass --force to replace all "
        "of it with the backup, or restore into an empty database\n"
    )
    assert engram(database_url, "restore", str(backup), "--force") == 0
    assert capsys.readouterr().out == f"restored 1 agents, 1 passages and 1 messages from {backup}\n"
    assert query(database_url, state) == before
    assert engram(database_url, "agents", "show", "notes") == 0  # Engram works on the restored database

    with temporary_database(postgres, template=None) as empty:  # a new database, Engram never ran there
        assert engram(empty, "restore", str(backup)) == 0
        assert query(empty, state) == before
        assert query(empty, "SELECT count(*) FROM passages WHERE embedding IS NOT NULL") == [(1,)]


def test_restore_refuses_what_is_not_a_backup_and_changes_nothing(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert engram(database_url, "agents", "create", "kept") == 0
    fake = tmp_path / "fake.backup"
    fake.write_text("SELECT 1;")
    cut = tmp_path / "cut.backup"
    assert engram(database_url, "backup", "-o", str(cut)) == 0
    cut.write_bytes(cut.read_bytes()[:200])
    capsys.readouterr()
    assert engram(database_url, "restore", str(fake), "--force") == 1
    assert capsys.readouterr().err == (
        f"engram: {fake} is not an Engram backup (a pg_dump custom-format archive, from 'engram backup')\n"
    )
    assert engram(database_url, "restore", str(cut), "--force") == 1
    assert f"engram: {cut} cannot be read as a backup" in capsys.readouterr().err
    assert query(database_url, "SELECT name FROM agents") == [("kept",)]


def test_backup_and_restore_use_the_embedded_database_of_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    backup = tmp_path / "embedded.backup"
    assert main(["agents", "create", "solo", "--human", "Name: Bo", *data]) == 0
    assert main(["backup", "-o", str(backup), *data]) == 0
    assert main(["agents", "update", "solo", "--description", "changed", *data]) == 0
    assert main(["restore", str(backup), "--force", *data]) == 0
    capsys.readouterr()
    assert main(["agents", "list", *data]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("solo\t") and "\tchanged\t" not in line
