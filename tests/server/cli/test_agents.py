"""`engram agents list|create|show|update|delete`."""

from __future__ import annotations

from pathlib import Path

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


PIRATE = "You are a pirate who keeps a ship's log in memory."


def test_agents_create_and_update_set_the_built_in_agents_settings_and_show_lists_them(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--database-url", database_url]
    prompt = tmp_path / "pirate.md"
    prompt.write_text(PIRATE)
    settings = ["--system-file", str(prompt), "--model", "openai/gpt-4o-mini", "--context-window", "16000"]
    assert main(["agents", "create", "ship", *settings, "--tags", "sea,log", *db]) == 0
    assert capsys.readouterr().out.startswith(
        "created agent 'ship'\n"
        "  model: openai/gpt-4o-mini; context window: 16000 tokens\n"
        "  system prompt: its own\n"
        "  tags: sea, log\n"
        "  persona: "
    )
    assert main(["agents", "update", "ship", "--new-name", "boat", "--model", "", "--tags", "", *db]) == 0
    assert capsys.readouterr().out == (
        "updated agent 'boat' (was 'ship')\n"
        "  model: the server's (llm_model); context window: 16000 tokens\n"
        "  system prompt: its own\n"
    )
    assert main(["agents", "update", "boat", "--system", "", "--context-window", "0", "--tags", "harbour", *db]) == 0
    assert capsys.readouterr().out == (
        "updated agent 'boat'\n"
        "  model: the server's (llm_model); context window: the server's (llm_context_window)\n"
        "  system prompt: Engram's default\n"
        "  tags: harbour\n"
    )
    assert main(["agents", "update", "boat", "--system", PIRATE, *db]) == 0
    capsys.readouterr()
    assert main(["agents", "show", "boat", *db]) == 0
    assert f"\nsystem prompt:\n{PIRATE}\n\n<memory_blocks" in capsys.readouterr().out
    assert main(["agents", "list", *db]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("boat\t") and line.endswith("\t\tharbour")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (
            ["update", "first", "--new-name", "second"],
            "agent 'second' already exists, so agent 'first' cannot take its name; pick another name",
        ),
        (
            ["update", "first", "--context-window", "100"],
            "context_window 100 is out of range: use 4096-10000000 tokens, or 0 for the server's default",
        ),
        (
            ["create", "third", "--system-file", "missing.md"],
            "cannot read the system prompt from missing.md: No such file or directory",
        ),
    ],
)
def test_agents_update_and_create_refuse_bad_settings_with_the_reason(
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    arguments: list[str],
    error: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    db = ["--database-url", database_url]
    for name in ("first", "second"):
        assert main(["agents", "create", name, *db]) == 0
    capsys.readouterr()
    assert main(["agents", *arguments, *db]) == 1
    assert capsys.readouterr().err == f"engram: {error}\n"
