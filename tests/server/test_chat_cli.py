"""`engram chat` and `engram summarize` from the command line."""

from __future__ import annotations

import io

import pytest

from engram.server.cli import main


def test_chat_without_a_model_says_which_setting_to_set_and_exits(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    monkeypatch.delenv("ENGRAM_LLM_MODEL", raising=False)
    assert main(["chat", "bot", "--database-url", database_url]) == 1
    assert "ENGRAM_LLM_MODEL" in capsys.readouterr().err


def test_summarize_a_conversation_that_does_not_exist_names_it(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summarize", "default", "--conversation", "nope", "--database-url", database_url]) == 1
    assert "no conversation 'nope'" in capsys.readouterr().err
