"""`engram chat` and `engram summarize` from the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.cli import main


def _sql(database_url: str, statement: str, **parameters: str) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text(statement), parameters)
    engine.dispose()


def _answers_with(database_url: str, agent: str, reply: str) -> None:
    """Give the agent its own litellm model, which answers `reply` without a provider (litellm's mock_response)."""
    llm = {"model": "openai/gpt-4o-mini", "context_window": 16000, "options": {"mock_response": reply}}
    _sql(
        database_url, "UPDATE agents SET llm = CAST(:llm AS jsonb) WHERE name = :name", llm=json.dumps(llm), name=agent
    )


class DeletesTheAgentBeforeTheSecondLine:
    """A person's input (what input() reads), while someone else deletes the agent between their first and
    second message."""

    def __init__(self, lines: str, database_url: str, agent: str) -> None:
        self.lines = io.StringIO(lines)
        self._database_url, self._agent, self._lines_read = database_url, agent, 0

    def readline(self) -> str:
        self._lines_read += 1
        if self._lines_read == 2:
            _sql(self._database_url, "DELETE FROM agents WHERE name = :name", name=self._agent)
        return self.lines.readline()


def test_chat_without_a_model_says_which_setting_to_set_and_exits(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    monkeypatch.delenv("ENGRAM_LLM_MODEL", raising=False)
    assert main(["chat", "bot", "--database-url", database_url]) == 1
    assert "ENGRAM_LLM_MODEL" in capsys.readouterr().err


def test_chat_as_a_principal_creates_and_uses_that_principals_agent(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ["--database-url", database_url]
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    monkeypatch.delenv("ENGRAM_LLM_MODEL", raising=False)
    assert main(["chat", "bot", "--principal", "alice", *db]) == 1
    err = capsys.readouterr().err
    assert "does not exist" not in err and "ENGRAM_LLM_MODEL" in err  # the turn ran as alice, with alice's agent
    assert main(["agents", "list", "--principal", "alice", *db]) == 0
    assert "bot" in capsys.readouterr().out
    assert main(["agents", "list", *db]) == 0
    assert "bot" not in capsys.readouterr().out


def test_a_refused_message_is_reported_the_chat_goes_on_and_its_exit_status_says_so(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("max_input_chars = 1000\n")
    db = ["--database-url", database_url, "--config", str(config)]
    assert main(["agents", "create", "bot", *db]) == 0
    _answers_with(database_url, "bot", "Hello from the mock.")
    monkeypatch.setattr("sys.stdin", io.StringIO("x" * 1001 + "\nhello\n"))
    capsys.readouterr()
    assert main(["chat", "bot", *db]) == 1
    captured = capsys.readouterr()
    assert "engram: 'message' is 1001 characters, over the maximum of 1000" in captured.err
    assert "bot> Hello from the mock." in captured.out


def test_the_chat_ends_when_its_agent_is_deleted_instead_of_failing_every_turn(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ["--database-url", database_url]
    assert main(["agents", "create", "bot", *db]) == 0
    _answers_with(database_url, "bot", "Hello from the mock.")
    stdin = DeletesTheAgentBeforeTheSecondLine("hello\nstill there?\nhello?\n", database_url, "bot")
    monkeypatch.setattr("sys.stdin", stdin)
    capsys.readouterr()
    assert main(["chat", "bot", *db]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("bot> Hello from the mock.") == 1
    assert "engram: agent 'bot' does not exist" in captured.err
    assert stdin.lines.read() == "hello?\n"


def test_summarize_a_conversation_that_does_not_exist_names_it(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summarize", "default", "--conversation", "nope", "--database-url", database_url]) == 1
    assert "no conversation 'nope'" in capsys.readouterr().err


def test_the_model_flag_of_a_chat_wins_over_the_agents_own_model(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ["--database-url", database_url]
    assert main(["agents", "create", "bot", *db]) == 0
    llm = {"model": "no-provider-knows-this-model", "options": {"mock_response": "Hello from the flag's model."}}
    _sql(database_url, "UPDATE agents SET llm = CAST(:llm AS jsonb) WHERE name = 'bot'", llm=json.dumps(llm))
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    capsys.readouterr()
    assert main(["chat", "bot", "--model", "openai/gpt-4o-mini", *db]) == 0
    assert "bot> Hello from the flag's model." in capsys.readouterr().out
