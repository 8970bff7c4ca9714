"""`engram blocks list|create|attach|detach|delete|history|undo`."""

from __future__ import annotations

import asyncio
import io

import pytest
from mcp.client.client import Client

from engram.server.app import build_server
from engram.server.cli import main
from engram.server.settings import Settings
from tests.conftest import call


def edit(settings: Settings, *edits: tuple[str, dict[str, str]]) -> None:
    """Make the edits through an MCP client (the CLI has no edit command), before the CLI reads them."""

    async def run() -> None:
        async with Client(build_server(settings)) as client:
            for tool, arguments in edits:
                await call(client, tool, **arguments)

    asyncio.run(run())


def test_blocks_create_attach_list_detach_delete(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]
    assert main(["blocks", "create", "team", "--value", "We ship on Fridays.", "--limit", "100", *db]) == 0
    created = capsys.readouterr().out
    assert created.startswith("created block 'team' ")
    block_id = created.split()[-1]
    for agent in ("notes", "chat"):
        assert main(["agents", "create", agent, *db]) == 0
        assert main(["blocks", "attach", "team", "--agent", agent, *db]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"attached block 'team' {block_id} to agent 'chat'; it is in: chat, notes"
    )
    assert main(["agents", "show", "chat", *db]) == 0
    assert "<value>\nWe ship on Fridays.\n</value>" in capsys.readouterr().out

    assert main(["blocks", "list", "--label", "team", *db]) == 0
    assert capsys.readouterr().out == f"{block_id}\tteam\t19/100 chars, version 1 standalone\tagents: chat, notes\n"
    assert main(["blocks", "detach", block_id, "--agent", "notes", *db]) == 0
    assert capsys.readouterr().out == f"detached block 'team' {block_id} from agent 'notes'; it is in: chat\n"
    assert main(["blocks", "delete", block_id, "--yes", *db]) == 0
    assert capsys.readouterr().out == f"deleted block 'team' {block_id} (it was in: chat)\n"
    assert main(["blocks", "list", "--label", "team", *db]) == 0
    assert capsys.readouterr().out == "no blocks labelled 'team'\n"


def test_blocks_history_and_undo(settings: Settings, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]
    assert main(["agents", "create", "notes", "--human", "Name: Ada", *db]) == 0
    edit(settings, ("core_memory_append", {"agent": "notes", "label": "human", "content": "Likes tea."}))
    capsys.readouterr()
    assert main(["blocks", "undo", "human", "--agent", "notes", *db]) == 0
    assert capsys.readouterr().out == (
        "block 'human' of agent 'notes' is back to its previous text, as version 3:\n    Name: Ada\n"
    )
    assert main(["blocks", "history", "human", "--agent", "notes", "--limit", "2", *db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("block 'human' of agent 'notes' (") and lines[0].endswith("), newest first:")
    assert [line.split("\t")[::2] for line in lines[1::2][:2]] == [
        ["version 3", "engram blocks undo"],
        ["version 2", "core_memory_append"],
    ]
    assert lines[2] == "    Name: Ada" and lines[4:] == [
        "    Name: Ada",
        "    Likes tea.",
        "(1 older versions not shown; use --limit)",
    ]


def test_undo_with_nothing_to_undo_fails_with_the_reason(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blocks", "undo", "human", "--database-url", database_url]) == 1
    assert capsys.readouterr().err == (
        "engram: block 'human' of agent 'default' has no earlier version to go back to (it is at version 1); "
        "nothing to undo\n"
    )


def test_blocks_delete_asks_for_yes_when_not_in_a_terminal(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["blocks", "create", "keep", "--database-url", database_url]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert main(["blocks", "delete", "keep", "--database-url", database_url]) == 2
    assert "deleting needs --yes" in capsys.readouterr().err
    assert main(["blocks", "list", "--database-url", database_url]) == 0
    assert "\tkeep\t" in capsys.readouterr().out


def test_blocks_commands_act_as_the_principal_given(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]
    assert main(["blocks", "create", "secret", "--principal", "alice", *db]) == 0
    capsys.readouterr()
    assert main(["blocks", "list", *db]) == 0
    assert capsys.readouterr().out == "no blocks\n"
    assert main(["blocks", "attach", "secret", "--agent", "default", *db]) == 1
    assert capsys.readouterr().err == (
        "engram: you have no block labelled 'secret'; call block_list to see your blocks\n"
    )
    assert main(["blocks", "list", "--principal", "alice", *db]) == 0
    assert "\tsecret\t" in capsys.readouterr().out


def test_out_of_range_limits_are_refused_with_the_range(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]
    assert main(["blocks", "create", "tiny", "--limit", "0", *db]) == 1
    assert capsys.readouterr().err == "engram: limit 0 is not valid; use 1 to 1000000 characters\n"
    assert main(["blocks", "history", "human", "--limit", "51", *db]) == 1
    assert capsys.readouterr().err == "engram: limit 51 is not valid; show 1 to 50 versions\n"
