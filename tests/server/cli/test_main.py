"""The `engram` command as a whole: its help, settings errors, and --principal on every memory command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engram.server.cli import main

COMMANDS = [
    ["serve"],
    ["tokens"],
    ["tokens", "create"],
    ["tokens", "list"],
    ["tokens", "revoke"],
    ["agents"],
    ["agents", "list"],
    ["agents", "create"],
    ["agents", "show"],
    ["agents", "delete"],
    ["agents", "update"],
    ["agents", "export"],
    ["agents", "import"],
    ["blocks"],
    ["blocks", "list"],
    ["blocks", "create"],
    ["blocks", "attach"],
    ["blocks", "detach"],
    ["blocks", "delete"],
    ["blocks", "history"],
    ["blocks", "undo"],
    ["conversations"],
    ["conversations", "list"],
    ["conversations", "delete"],
    ["ingest"],
    ["record"],
    ["import"],
    ["reindex"],
    ["hook"],
    ["chat"],
    ["summarize"],
    ["sql"],
    ["doctor"],
    ["db"],
    ["db", "status"],
    ["db", "stop"],
    ["ui"],
    ["hook"],
    ["backup"],
    ["restore"],
]


def _help(command: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda command: " ".join(command) or "engram")
def test_help_of_every_command_and_action_shows_its_usage(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _help(command, capsys).startswith(f"usage: {' '.join(['engram', *command])} [-h]")


def test_the_help_tests_cover_every_command_and_action_the_help_lists(capsys: pytest.CaptureFixture[str]) -> None:
    def listed(command: list[str]) -> set[str]:
        return set(re.findall(r"^ {4}(\S+)", _help(command, capsys), flags=re.MULTILINE))

    groups = {command[0] for command in COMMANDS}
    assert listed([]) == groups
    for group in groups:
        actions = {command[1] for command in COMMANDS if command[0] == group and len(command) == 2}
        assert listed([group]) == actions


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_a_group_without_its_action_names_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agents"])
    assert exited.value.code == 2
    assert "engram agents: error: the following arguments are required: ACTION" in capsys.readouterr().err


def test_unknown_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agents", "list", "--bogus"])
    assert exited.value.code == 2
    assert "engram: error: unrecognized arguments: --bogus" in capsys.readouterr().err


def test_invalid_setting_fails_at_start_naming_the_key_and_its_source(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "engram.server.cli", "doctor"],
        env={"ENGRAM_BLOCK_CHAR_LIMIT": "lots", "ENGRAM_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "invalid setting 'block_char_limit' (from environment variable ENGRAM_BLOCK_CHAR_LIMIT)" in completed.stderr
    assert completed.stdout == ""


def test_principal_flag_scopes_every_memory_command(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]
    assert main(["agents", "create", "ledger", "--principal", "alice", *db]) == 0
    assert main(["record", "--agent", "ledger", "Paid the plumber 120 EUR.", "--principal", "alice", *db]) == 0
    capsys.readouterr()
    assert main(["agents", "list", *db]) == 0
    assert "ledger" not in capsys.readouterr().out
    assert main(["agents", "show", "ledger", *db]) == 1
    assert "agent 'ledger' does not exist" in capsys.readouterr().err
    assert main(["agents", "list", "--principal", "alice", *db]) == 0
    assert "ledger" in capsys.readouterr().out
