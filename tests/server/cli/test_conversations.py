"""`engram conversations list|delete`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.cli import main


def sql(database_url: str, statement: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def record(database_url: str, conversation: str, *messages: str) -> None:
    for message in messages:
        command = ["record", "--agent", "notes", "--conversation", conversation, message]
        assert main([*command, "--database-url", database_url]) == 0


def test_conversations_list_shows_each_with_title_source_size_and_last_activity_newest_first(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "export.jsonl"
    export.write_text(
        "".join(
            json.dumps({"conversation": "kickoff", "role": role, "content": content, "created_at": at}) + "\n"
            for role, content, at in (
                ("user", "Agenda?", "2025-03-01T09:00:00Z"),
                ("assistant", "Budget, then hiring.", "2025-03-01T09:02:00Z"),
            )
        )
    )
    assert main(["import", str(export), "--agent", "notes", "--database-url", database_url]) == 0
    record(database_url, "standup", "We ship on Friday.")
    capsys.readouterr()
    assert main(["conversations", "list", "--agent", "notes", "--database-url", database_url]) == 0
    standup, kickoff = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"standup\t\tcli\t1 message\t\d{4}-\d\d-\d\d \d\d:\d\d UTC", standup), standup
    assert kickoff == "kickoff\t\tjsonl\t2 messages\t2025-03-01 09:02 UTC"


def test_conversations_list_of_an_agent_without_any_says_so(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["conversations", "list", "--database-url", database_url]) == 0
    assert capsys.readouterr().out == "agent 'default' has no conversations yet\n"


def test_conversations_list_shows_every_conversation_past_the_first_page(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    record(database_url, "first", "hello")
    sql(
        database_url,
        "INSERT INTO conversations (id, owner_id, agent_id, name, source) "
        "SELECT gen_random_uuid(), owner_id, agent_id, 'bulk-' || n, 'test' "
        "FROM conversations, generate_series(1, 150) n",
    )
    capsys.readouterr()
    assert main(["conversations", "list", "--agent", "notes", "--database-url", database_url]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert sorted(names) == sorted(["first", *(f"bulk-{n}" for n in range(1, 151))])


def test_conversations_delete_removes_its_messages_and_summaries_and_leaves_the_others(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    record(database_url, "standup", "We ship on Friday.", "The demo is at ten.")
    record(database_url, "retro", "Deploys were slow.")
    sql(
        database_url,
        "INSERT INTO summaries (owner_id, agent_id, conversation_id, first_ordinal, last_ordinal, evicted, text, kind) "
        "SELECT owner_id, agent_id, id, 1, 1, 1, 'Shipping on Friday.', 'summary' FROM conversations "
        "WHERE name = 'standup'",
    )
    capsys.readouterr()
    delete = ["conversations", "delete", "standup", "--agent", "notes", "--yes", "--database-url", database_url]
    assert main(delete) == 0
    assert capsys.readouterr().out == "deleted conversation 'standup' of agent 'notes' (2 messages, 1 summary)\n"
    assert sql(
        database_url, "SELECT c.name, m.text FROM messages m JOIN conversations c ON c.id = m.conversation_id"
    ) == [("retro", "Deploys were slow.")]
    assert sql(database_url, "SELECT count(*) FROM summaries") == [(0,)]

    assert main(delete) == 1
    assert capsys.readouterr().err == (
        "engram: agent 'notes' has no conversation 'standup'; engram://agents/notes/conversations lists them\n"
    )


def test_conversations_delete_asks_for_yes_when_not_run_from_a_terminal(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    record(database_url, "standup", "We ship on Friday.")
    capsys.readouterr()
    assert main(["conversations", "delete", "standup", "--agent", "notes", "--database-url", database_url]) == 2
    assert capsys.readouterr().err == "engram: deleting needs --yes when not run from a terminal\n"
    assert sql(database_url, "SELECT count(*) FROM messages") == [(1,)]
