"""`engram serve`'s own flags (serving itself is tested in tests/server/test_stdio.py and test_http.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engram.server.cli import main
from tests.conftest import every_tool


def test_serve_refuses_an_unknown_tool_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert main(["serve", "--tools", "memory,agent_lst", "--data-dir", str(data_dir)]) == 2
    assert capsys.readouterr().err == (
        "engram: invalid setting 'tool_profile': unknown tool 'agent_lst'; give 'memory', 'full', or tool names "
        f"separated by commas: {', '.join(sorted(every_tool()))}\n"
    )
    assert not data_dir.exists()  # no embedded PostgreSQL was started


def test_serve_refuses_an_empty_tool_list_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--tools", " , ", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "engram: invalid setting 'tool_profile' (from command-line flag --tools): Value error, give 'memory', "
        "'full', or tool names separated by commas\n"
    )
