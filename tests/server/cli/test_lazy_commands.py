"""The `engram` command imports only the module of the command that runs (a hook runs on every prompt)."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from engram.server.cli import COMMANDS


def test_the_command_table_names_every_command_with_its_modules_own_help() -> None:
    """`engram --help` lists commands from COMMANDS without importing them: it must say what the modules say."""
    common = argparse.ArgumentParser(add_help=False)
    parser = argparse.ArgumentParser(prog="engram")
    commands = parser.add_subparsers()
    for module in dict.fromkeys(module for _, module, _ in COMMANDS):
        importlib.import_module(f"engram.server.cli.{module}").register(commands, common)
    registered = [(action.dest, action.help) for action in commands._choices_actions]
    assert registered == [(name, help_text) for name, _, help_text in COMMANDS]
    for name, module, _ in COMMANDS:
        run = commands.choices[name].get_default("run")
        assert run is None or run.__module__ == f"engram.server.cli.{module}", name


@pytest.mark.parametrize(
    ("arguments", "imported"),
    [
        (["--help"], []),
        (["hook", "claude-code", "--help"], ["hook"]),
        (["record", "--help"], ["ingest"]),
        (["sql", "--help"], ["doctor"]),
        (["agents", "list", "--help"], ["agents"]),
    ],
)
def test_a_command_imports_only_its_own_module(arguments: list[str], imported: list[str]) -> None:
    """Of the command modules, only the running command's is imported (shared helpers may be)."""
    probe = (
        "import sys\n"
        "from engram.server.cli import COMMANDS, main\n"
        "try:\n"
        f"    main({arguments!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({m for _, m, _ in COMMANDS if f'engram.server.cli.{m}' in sys.modules}))\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip().splitlines()[-1] == repr(imported)
