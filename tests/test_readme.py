"""The README's examples are real: its host config, tool calls, commands and SQL all run here."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.client import Client
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.cli import main
from tests.conftest import call, engram_command, engram_http

README = (Path(__file__).parents[1] / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_first_screen_gives_the_install_and_test_commands() -> None:
    first = code_blocks("sh")[0]
    assert "pip install . && engram serve" in first
    assert 'pip install -e ".[dev]" && pytest' in first
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "pip install . && engram serve" in ci and 'pip install -e ".[dev]" && pytest' in ci


def test_host_config_snippet_is_valid_and_runs_engram_serve() -> None:
    config = json.loads(code_blocks("json")[0])
    assert config["mcpServers"]["engram"] == {"command": "engram", "args": ["serve"]}


@pytest.mark.anyio
async def test_tool_examples_run_in_order_and_answer_as_the_readme_says(client: Client) -> None:
    lines = [line for line in code_blocks("text")[0].splitlines() if line.strip()]
    assert len(lines) >= 9
    answers: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        tool, _, arguments = line.partition(" ")
        answers.setdefault(tool, []).append(await call(client, tool, **json.loads(arguments)))

    [created] = answers["agent_create"]
    assert [(block["label"], block["read_only"]) for block in created["blocks"]] == [
        ("persona", False),
        ("human", False),
        ("rules", True),
    ]
    # edits return the block's new state
    [appended], [replaced], [inserted], [replaced_once] = (
        answers[tool] for tool in ("core_memory_append", "core_memory_replace", "memory_insert", "memory_replace")
    )
    assert [(edit["value"], edit["version"]) for edit in (appended, replaced, inserted, replaced_once)] == [
        ("Name: Ada\nPrefers trains to planes.", 2),
        ("Name: Ada\nPrefers night trains to planes.", 3),
        ("Name: Ada\nLives in Lisbon.\nPrefers night trains to planes.", 4),
        ("Name: Ada\nLives in Porto.\nPrefers night trains to planes.", 5),
    ]
    assert replaced_once["chars_current"] == len(replaced_once["value"]) and replaced_once["chars_limit"] == 5000
    [rethought] = answers["memory_rethink"]
    assert (rethought["label"], rethought["value"]) == ("persona", "I plan trips by rail.")
    # undo brings back the text before memory_replace; undoing the undo brings memory_replace's text back
    undone, redone = answers["core_memory_undo"]
    assert [(edit["value"], edit["version"]) for edit in (undone, redone)] == [
        ("Name: Ada\nLives in Lisbon.\nPrefers night trains to planes.", 6),
        (replaced_once["value"], 7),
    ]
    [history] = answers["core_memory_history"]
    assert [(version["version"], version["actor"]) for version in history["versions"]] == [
        (7, "core_memory_undo"),
        (6, "core_memory_undo"),
        (5, "memory_replace"),
    ]
    assert history["older"] == 4
    [budget] = answers["block_create"]
    [attached] = answers["block_attach"]  # named by its label: no other block has it
    assert (attached["id"], attached["agents"]) == (budget["id"], ["travel"])
    [blocks] = answers["block_list"]
    assert [(block["label"], block["agents"]) for block in blocks["blocks"]] == [
        ("budget", ["travel"]),
        ("human", ["travel"]),
        ("persona", ["travel"]),
        ("rules", ["travel"]),
    ]
    [view] = answers["core_memory_view"]
    for block in (
        "<value>\nI plan trips by rail.\n</value>",
        "<value>\nName: Ada\nLives in Porto.\nPrefers night trains to planes.\n</value>",
        "- read_only=true",
        "<value>\nAnswer in English.\n</value>",
        "<value>\nAt most 500 EUR a trip.\n</value>",
    ):
        assert block in view["text"], block

    cabin = "Booked sleeper cabin 14 on the Lisbon-Madrid night train for 3 May."
    seasick = "Ada gets seasick on ferries; prefers land routes."
    assert [stored["created"] for stored in answers["archival_memory_insert"]] == [True, True]
    by_meaning, by_words_and_tag = answers["archival_memory_search"]
    assert by_meaning["results"][0]["content"] == seasick
    assert [(hit["content"], hit["tags"]) for hit in by_words_and_tag["results"]] == [(cabin, ["trips", "trains"])]

    assert [(message["conversation"], message["ordinal"]) for message in answers["conversation_record"]] == [
        ("rail-2025", 1),
        ("rail-2025", 2),
    ]
    [found] = answers["conversation_search"]
    request = "Find me a sleeper from Lisbon to Madrid for early May."
    reply = "The Lusitania night train is gone; the best option is a day train to Badajoz and an overnight coach."
    hits = {hit["role"]: hit for hit in found["results"]}
    assert {role: hit["text"] for role, hit in hits.items()} == {"user": request, "assistant": reply}
    assert hits["assistant"]["before"] == f"user: {request}" and hits["user"]["after"] == f"assistant: {reply}"
    assert all(hit["conversation"] == "rail-2025" for hit in found["results"])

    [updated] = answers["agent_update"]
    settings = (updated["tags"], updated["model"], updated["system"], updated["description"])
    assert settings == (["trips"], "openai/gpt-4o-mini", "You plan rail trips for Ada.", "")
    [listed] = answers["agent_list"]
    assert [(agent["name"], agent["tags"]) for agent in listed["agents"]] == [("travel", ["trips"])]
    assert answers["agent_delete"] == [{"name": "travel", "blocks_deleted": 3}]  # the standalone 'budget' stays


def test_command_line_examples_run(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the ingest example reads ./meeting-notes/
    (tmp_path / "meeting-notes").mkdir()
    (tmp_path / "meeting-notes" / "2025-03-kickoff.md").write_text("# Kickoff\n\nWe chose Postgres.\n")
    (tmp_path / "chat-export.jsonl").write_text(
        json.dumps({"conversation": "kickoff", "role": "user", "content": "Agenda?", "created_at": "2025-03-01"}) + "\n"
    )
    block = next(b for b in code_blocks("sh") if "engram agents list" in b)
    for line in block.splitlines():
        command = shlex.split(line.split("  #")[0].strip())
        if command in (["engram", "serve", "[--default-agent", "A]"], ["engram", "sql"]):
            continue  # the stdio server and an interactive psql are tried by other tests
        assert command[0] == "engram"
        assert main([*command[1:], "--database-url", database_url]) == 0, line
    assert "label" in capfd.readouterr().out  # the psql query printed its header


def test_sql_examples_run(database_url: str) -> None:
    statements = [s.strip() for s in code_blocks("sql")[0].split(";") if s.strip()]
    assert main(["agents", "create", "default", "--human", "v1", "--database-url", database_url]) == 0
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE blocks SET value = 'v2', version = 2 WHERE label = 'human'"))
        connection.execute(
            text(
                "INSERT INTO block_history (block_id, version, value, actor) "
                "SELECT id, 1, 'v1', 'test' FROM blocks WHERE label = 'human'"
            )
        )
    with engine.begin() as connection:
        results = [connection.execute(text(statement)) for statement in statements]
        earlier = [tuple(row) for row in results[1]]  # what the human block said before each edit
    engine.dispose()
    assert [(version, actor, value) for version, actor, _created_at, value in earlier] == [(1, "test", "v1")]


def test_claude_code_hook_example_gives_memory_and_records_prompts_and_replies(
    database_url: str, tmp_path: Path
) -> None:
    """The hook config as written, run the way Claude Code runs it: the event's JSON on stdin."""
    hooks = json.loads(next(block for block in code_blocks("json") if '"hooks"' in block))["hooks"]
    assert set(hooks) == {"SessionStart", "UserPromptSubmit", "Stop"}
    transcript = tmp_path / "session.jsonl"
    transcript.write_text(
        json.dumps({"type": "user", "message": {"role": "user", "content": "Which port does the API use?"}})
        + "\n"
        + json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "Port 8443."}]}})
        + "\n"
    )
    events: list[tuple[str, dict[str, object]]] = [
        ("SessionStart", {"source": "startup"}),
        ("UserPromptSubmit", {"prompt": "Which port does the API use?"}),
        ("Stop", {"last_assistant_message": "It listens on port 8443.", "stop_hook_active": False}),
        ("Stop", {"stop_hook_active": False}),  # an older Claude Code: the reply comes from the transcript
    ]
    outputs = []
    for event, fields in events:
        [entry] = hooks[event]
        [hook] = entry["hooks"]
        payload: dict[str, object] = {
            "session_id": "7f3c-session",
            "transcript_path": str(transcript),
            "hook_event_name": event,
        }
        finished = subprocess.run(
            shlex.split(hook["command"]),
            input=json.dumps(payload | fields),
            capture_output=True,
            text=True,
            env=os.environ | {"ENGRAM_DATABASE_URL": database_url},
            timeout=120,
        )
        assert finished.returncode == 0, finished.stderr
        assert "engram hook:" not in finished.stderr
        outputs.append(finished.stdout)
    start = json.loads(outputs[0])["hookSpecificOutput"]
    assert start["hookEventName"] == "SessionStart" and "<core_memory>" in start["additionalContext"]
    assert outputs[1:] == ["", "", ""]  # core memory was given at the start; nothing else is in memory yet
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT a.name AS agent, c.name AS conversation, c.source, m.role, m.text FROM messages m "
                "JOIN conversations c ON c.id = m.conversation_id JOIN agents a ON a.id = m.agent_id ORDER BY m.ordinal"
            )
        ).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("claude-code", "7f3c-session", "claude-code", "user", "Which port does the API use?"),
        ("claude-code", "7f3c-session", "claude-code", "assistant", "It listens on port 8443."),
        ("claude-code", "7f3c-session", "claude-code", "assistant", "Port 8443."),
    ]


@pytest.mark.anyio
async def test_the_fast_claude_code_setup_posts_to_the_http_hook(database_url: str) -> None:
    """The second hook config: SessionStart as a command through the server (--url), the per-prompt events as
    http hooks."""
    hooks = json.loads([block for block in code_blocks("json") if '"hooks"' in block][1])["hooks"]
    [start] = hooks["SessionStart"][0]["hooks"]
    assert start["type"] == "command"
    async with engram_http(database_url) as base_url, httpx2.AsyncClient(timeout=60) as http:
        command = shlex.split(start["command"].replace("http://127.0.0.1:8283", base_url))
        started = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [engram_command(), *command[1:]],
                input=json.dumps({"session_id": "f4st", "hook_event_name": "SessionStart", "source": "startup"}),
                capture_output=True,
                text=True,
                env=os.environ | {"ENGRAM_DATABASE_URL": database_url},
                timeout=120,
            )
        )
        assert started.returncode == 0 and started.stderr == "", started.stderr  # answered by the server
        assert json.loads(started.stdout)["hookSpecificOutput"]["hookEventName"] == "SessionStart"
        for event, fields in (
            ("UserPromptSubmit", {"prompt": "Which port?"}),
            ("Stop", {"last_assistant_message": "8443."}),
        ):
            [hook] = hooks[event][0]["hooks"]
            assert hook["type"] == "http"
            url = hook["url"].replace("http://127.0.0.1:8283", base_url)
            payload = {"session_id": "f4st", "hook_event_name": event, **fields}
            answer = await http.post(url, json=payload)
            assert answer.status_code == 200, answer.text
    # both were recorded in the agent the url names
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT a.name, m.role, m.text FROM messages m JOIN agents a ON a.id = m.agent_id ORDER BY m.ordinal")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("claude-code", "user", "Which port?"),
        ("claude-code", "assistant", "8443."),
    ]


@pytest.mark.anyio
async def test_letta_client_script_runs_unchanged_but_for_base_url_and_api_key(database_url: str) -> None:
    script = next(block for block in code_blocks("python") if "from letta_client import Letta" in block)
    environment = {
        "ENGRAM_TOKENS": "readme=readme-token-1234",
        "ENGRAM_LLM_MODEL": "openai/gpt-4o-mini",
        "ENGRAM_LLM_OPTIONS": json.dumps({"mock_response": "It shipped on 3 March."}),
    }
    async with engram_http(database_url, environment=environment) as base_url:
        adapted = script.replace('"http://127.0.0.1:8283"', repr(base_url)).replace('"TOKEN"', '"readme-token-1234"')
        assert adapted.count(base_url) == 1 and adapted.count("readme-token-1234") == 1
        done = await anyio.run_process([sys.executable, "-c", adapted], check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert done.stdout.decode().splitlines() == [
        "['support-bot']",
        "Dana's order #1042 shipped on 3 March.",
        "It shipped on 3 March.",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
        "4 messages",
    ]
