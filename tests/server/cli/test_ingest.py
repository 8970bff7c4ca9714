"""Getting data into memory: `engram ingest`, `record`, `import` and `reindex`."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from engram.server.cli import main

IMPORTS = Path(__file__).parents[2] / "tools" / "data" / "imports"


def test_ingest_adds_files_once_and_replaces_changed_ones(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "Trips.md").write_text("# Trips\n\nNight train to Vienna in May.\n\nBook the deluxe cabin next time.\n")
    (docs / "sub" / "recipes.txt").write_text("Grandma's soup: carrots, leek and two potatoes.\n")
    (docs / "scan.pdf").write_bytes(b"%PDF-1.4")
    db = ["--database-url", database_url]
    assert main(["ingest", "default", str(docs), *db]) == 0
    assert "2 files (0 unchanged): 2 passages added" in capsys.readouterr().out
    assert main(["ingest", "default", str(docs), *db]) == 0
    assert "2 files (2 unchanged): 0 passages added" in capsys.readouterr().out
    (docs / "Trips.md").write_text("# Trips\n\nNight train to Vienna in May, with Lena.\n")
    assert main(["ingest", "default", str(docs / "Trips.md"), *db]) == 0
    assert "1 files (0 unchanged): 1 passages added, 0 already stored, 1 replaced" in capsys.readouterr().out
    assert main(["sql", *db, "-tA", "-c", "SELECT tags[1], source FROM passages ORDER BY source"]) == 0
    assert main(["ingest", "default", str(docs / "scan.pdf"), *db]) == 1
    assert "is not a .txt or .md file" in capsys.readouterr().err
    assert main(["ingest", "default", str(tmp_path / "missing"), *db]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_reindex_reembeds_passages_and_messages_of_another_model(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.md").write_text("The boiler was serviced in October.\n\nThe car needs new tyres.\n")
    db = ["--database-url", database_url]
    assert main(["ingest", "default", str(tmp_path / "notes.md"), *db]) == 0
    assert main(["import", str(IMPORTS / "claude.json"), *db]) == 0
    assert main(["record", "not embedded yet", *db]) == 0
    assert main(["sql", *db, "-c", "UPDATE passages SET embedding_model = 'old/model'"]) == 0
    assert (
        main(["sql", *db, "-c", "UPDATE messages SET embedding_model = 'old/model' WHERE text LIKE 'How long%'"]) == 0
    )
    capsys.readouterr()
    assert main(["doctor", *db]) == 1
    report = capsys.readouterr().out
    assert "FAIL  archival embeddings: 1 passages, 1 not embedded with" in report
    assert (
        "FAIL  recall embeddings: 6 messages, 1 waiting to be embedded (a running 'engram serve' embeds them, or "
        "'engram reindex' now), 1 embedded with another" in report
    )
    assert main(["reindex", *db]) == 0
    assert "1 passages and 2 messages embedded with sentence-transformers/all-MiniLM-L6-v2" in capsys.readouterr().out
    assert main(["doctor", *db]) == 0


def _messages(database_url: str) -> list[tuple[str, str, str, str]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT a.name, c.name, m.role, m.text FROM messages m "
                "JOIN conversations c ON c.id = m.conversation_id JOIN agents a ON a.id = m.agent_id "
                "ORDER BY c.name, m.ordinal"
            )
        ).all()
    engine.dispose()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def test_record_takes_the_text_from_stdin_and_creates_the_agent(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Remember the blue notebook.\n"))
    assert main(["record", "--agent", "notes", "--conversation", "desk", "--database-url", database_url]) == 0
    assert main(["record", "--agent", "notes", "--conversation", "desk", "--role", "assistant", "Noted.",
                 "--database-url", database_url]) == 0  # fmt: skip
    assert capsys.readouterr().out == ""
    assert _messages(database_url) == [
        ("notes", "desk", "user", "Remember the blue notebook.\n"),
        ("notes", "desk", "assistant", "Noted."),
    ]


def test_record_refuses_empty_text_and_a_hook_event_that_is_not_json(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("  \n"))
    assert main(["record", "--database-url", database_url]) == 1
    assert "'content' is empty" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("prompt: hi"))
    assert main(["record", "--hook", "claude-code", "--database-url", database_url]) == 1
    assert "the hook's input on stdin is not JSON" in capsys.readouterr().err
    assert _messages(database_url) == []


def test_import_reports_what_it_added_and_adds_nothing_the_second_time(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    export = str(IMPORTS / "chatgpt.json")
    assert main(["import", export, "--agent", "history", "--database-url", database_url]) == 0
    assert "2 chatgpt conversations (2 new): 7 messages added, 0 already stored, 7 embedded" in capsys.readouterr().out
    assert main(["import", export, "--agent", "history", "--database-url", database_url]) == 0
    assert "(0 new): 0 messages added, 7 already stored, 0 embedded" in capsys.readouterr().out
    assert len(_messages(database_url)) == 7


def test_import_names_the_bad_line_and_stores_nothing(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "chat.jsonl"
    export.write_text('{"conversation": "a", "role": "user", "content": "hi"}\n{"conversation": "a", "role": "bot"}\n')
    assert main(["import", str(export), "--database-url", database_url]) == 1
    assert "line 2 of" in capsys.readouterr().err
    assert _messages(database_url) == []
