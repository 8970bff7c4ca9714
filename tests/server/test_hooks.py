"""Claude Code's hooks: `engram hook claude-code` run as Claude Code runs it, the HTTP hook, and the REST route
that gives the same context."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.cli import main
from engram.server.hooks import OUTPUT_CHARS, hook_output
from engram.server.runtime import open_runtime
from engram.server.settings import Settings
from engram.tools.memory.agents import BlockSpec, agent_create
from tests.conftest import engram_command, engram_http

Captured = Any  # pytest's CaptureResult[str]: .out and .err

EARLIER = [
    ("user", "We are moving the billing API to port 8443 next week; port 8080 stays open until the 20th."),
    ("assistant", "Noted: billing moves to 8443, and 8080 keeps answering until the 20th for old clients."),
    ("user", "The flaky test in test_invoices.py fails when the clock crosses midnight UTC."),
    ("assistant", "I pinned the clock with freezegun in that test; it passes at any hour now."),
]


def import_earlier(database_url: str, tmp_path: Path, *extra: str) -> None:
    """An earlier Claude Code session, dated, as `engram import` would bring it (embedded)."""
    export = tmp_path / "earlier.jsonl"
    export.write_text(
        "".join(
            json.dumps(
                {"conversation": "earlier-session", "role": role, "content": said, "created_at": f"2025-05-0{n + 1}"}
            )
            + "\n"
            for n, (role, said) in enumerate(EARLIER)
        )
    )
    assert main(["import", str(export), "--agent", "cc", "--database-url", database_url, *extra]) == 0


def hook(database_url: str, event: dict[str, Any], *, agent: str = "cc") -> subprocess.CompletedProcess[str]:
    """`engram hook claude-code` as Claude Code runs it: a new process, the event's JSON on stdin."""
    return subprocess.run(
        [engram_command(), "hook", "claude-code", "--agent", agent],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=os.environ | {"ENGRAM_DATABASE_URL": database_url},
        timeout=120,
    )


def context_of(finished: subprocess.CompletedProcess[str], event: str) -> str:
    """The additionalContext the hook gave ('' for none), after checking it exited 0 within the cap."""
    assert finished.returncode == 0, finished.stderr
    assert len(finished.stdout) <= OUTPUT_CHARS
    if not finished.stdout:
        return ""
    output = json.loads(finished.stdout)["hookSpecificOutput"]
    assert output["hookEventName"] == event
    return str(output["additionalContext"])


def test_a_claude_code_session_gets_memory_of_earlier_ones_and_nothing_for_unrelated_prompts(
    database_url: str, tmp_path: Path
) -> None:
    import_earlier(database_url, tmp_path)
    session = {"session_id": "5e55-1on", "transcript_path": str(tmp_path / "t.jsonl"), "cwd": str(tmp_path)}

    def prompt(text_value: str) -> str:
        event = session | {"hook_event_name": "UserPromptSubmit", "prompt": text_value}
        return context_of(hook(database_url, event), "UserPromptSubmit")

    start = context_of(
        hook(database_url, session | {"hook_event_name": "SessionStart", "source": "startup"}), "SessionStart"
    )
    assert "<core_memory>" in start and "<recent_activity>" in start
    assert 'name="earlier-session"' in start and "freezegun" in start  # the last messages of the earlier session

    port = prompt("Which port will the billing API use after the move?")
    assert "<recalled>" in port and "8443" in port and 'date="2025-05-01"' in port
    assert "<core_memory>" not in port  # given at the session's start already
    reply = session | {"hook_event_name": "Stop", "last_assistant_message": "Port 8443; 8080 until the 20th."}
    assert context_of(hook(database_url, reply), "Stop") == ""

    assert prompt("Write a haiku about autumn leaves falling in the park.") == ""  # unrelated: nothing recalled
    assert prompt("Which port does the billing API listen on after the move?") == ""  # given already, own prompt
    assert prompt("yes, go ahead") == ""

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        recorded = connection.execute(
            text(
                "SELECT c.source, m.role, m.text FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE c.name = '5e55-1on' ORDER BY m.ordinal"
            )
        ).all()
    engine.dispose()
    roles = ["user", "assistant", "user", "user", "user"]  # every prompt, and the reply
    assert [(source, role) for source, role, _ in recorded] == [("claude-code", role) for role in roles]
    assert recorded[1][2] == "Port 8443; 8080 until the 20th."


def test_a_compacted_session_is_given_its_memory_again(
    database_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import_earlier(database_url, tmp_path)
    session = {"session_id": "c0mpact", "transcript_path": str(tmp_path / "t.jsonl")}
    run = in_process(database_url, capfd)
    assert "<core_memory>" in run(session | {"hook_event_name": "SessionStart", "source": "startup"}).out
    assert run(session | {"hook_event_name": "SessionStart", "source": "resume"}).out == ""  # all given already
    assert "<core_memory>" in run(session | {"hook_event_name": "SessionStart", "source": "compact"}).out


def in_process(database_url: str, capfd: pytest.CaptureFixture[str]) -> Callable[[dict[str, Any] | str], Captured]:
    """`engram hook claude-code` run by main() in this process (faster; the same code): event -> what it printed."""

    def run(event: dict[str, Any] | str) -> Captured:
        saved = sys.stdin
        sys.stdin = io.StringIO(event if isinstance(event, str) else json.dumps(event))
        try:
            assert main(["hook", "claude-code", "--agent", "cc", "--database-url", database_url]) == 0
        finally:
            sys.stdin = saved
        printed = capfd.readouterr()
        assert len(printed.out) <= OUTPUT_CHARS
        return printed

    return run


def test_the_output_never_passes_claude_codes_10000_characters(
    settings: Settings, database_url: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def big_core_memory() -> None:
        blocks = [BlockSpec(label=f"notes{n}", value=f'"Quoted" line {n}\n' * 250, limit=6000) for n in range(5)]
        async with open_runtime(settings) as runtime:
            await agent_create(await runtime.scope(), "cc", blocks=blocks)

    anyio.run(big_core_memory)
    monkeypatch.setenv("ENGRAM_CONTEXT_SESSION_TOKENS", "8000")  # ~30,000 characters, were it not for the cap
    event = {"hook_event_name": "SessionStart", "session_id": "big", "source": "startup"}
    output = in_process(database_url, capfd)(event).out
    assert "<core_memory>" in json.loads(output)["hookSpecificOutput"]["additionalContext"]
    huge = hook_output("UserPromptSubmit", '"quotes" and\nbreaks\t' * 3000)
    assert len(huge) <= OUTPUT_CHARS and json.loads(huge)["hookSpecificOutput"]["additionalContext"].endswith("…")


@pytest.mark.parametrize(
    ("stdin", "says"),
    [
        ("this is not JSON", "the hook's input is not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"hook_event_name": "UserPromptSubmit", "session_id": "bad name!", "prompt": "hi"}', "conversation name"),
        ('{"hook_event_name": "Notification", "session_id": "s", "message": "idle"}', ""),
        ('{"hook_event_name": "UserPromptSubmit", "session_id": "s", "prompt": "   "}', ""),
    ],
)
def test_bad_input_exits_0_gives_no_context_and_says_why_on_stderr(
    database_url: str, capfd: pytest.CaptureFixture[str], stdin: str, says: str
) -> None:
    printed = in_process(database_url, capfd)(stdin)
    assert printed.out == "" and says in printed.err


def test_invalid_settings_exit_0_too(
    database_url: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGRAM_CONTEXT_PROMPT_TOKENS", "lots")
    event = {"hook_event_name": "UserPromptSubmit", "session_id": "s", "prompt": "hello there"}
    printed = in_process(database_url, capfd)(event)
    assert printed.out == "" and "context_prompt_tokens" in printed.err


def test_engram_record_hook_still_records_prompts_and_replies(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    for event in (
        {"hook_event_name": "UserPromptSubmit", "session_id": "old-style", "prompt": "Which port?"},
        {"hook_event_name": "Stop", "session_id": "old-style", "last_assistant_message": "8443."},
    ):
        sys.stdin, saved = io.StringIO(json.dumps(event)), sys.stdin
        try:
            assert main(["record", "--agent", "cc", "--hook", "claude-code", "--database-url", database_url]) == 0
        finally:
            sys.stdin = saved
        assert capfd.readouterr().out == ""
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT role, text FROM messages ORDER BY ordinal")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("user", "Which port?"), ("assistant", "8443.")]


@pytest.mark.anyio
async def test_the_http_hook_and_the_rest_route_need_the_token_and_give_memory(
    database_url: str, tmp_path: Path
) -> None:
    await anyio.to_thread.run_sync(lambda: import_earlier(database_url, tmp_path, "--principal", "team"))
    auth = {"Authorization": "Bearer hook-token-0123456789"}
    async with (
        engram_http(database_url, environment={"ENGRAM_TOKENS": "team=hook-token-0123456789"}) as base_url,
        httpx2.AsyncClient(base_url=base_url, timeout=60) as http,
    ):
        event = {"hook_event_name": "UserPromptSubmit", "session_id": "h77p", "prompt": "Which port will billing use?"}
        assert (await http.post("/hooks/claude-code?agent=cc", json=event)).status_code == 401
        given = await http.post("/hooks/claude-code?agent=cc", json=event, headers=auth)
        assert given.status_code == 200 and given.headers["content-type"] == "application/json"
        assert "8443" in given.json()["hookSpecificOutput"]["additionalContext"]
        stop = {"hook_event_name": "Stop", "session_id": "h77p", "last_assistant_message": "8443."}
        done = await http.post("/hooks/claude-code?agent=cc", json=stop, headers=auth)
        assert (done.status_code, done.text) == (200, "")
        garbage = await http.post("/hooks/claude-code?agent=cc", content=b"not json", headers=auth)
        assert garbage.status_code == 422 and "not JSON" in garbage.json()["detail"]

        agents = (await http.get("/v1/agents", headers=auth)).json()
        agent_id = next(agent["id"] for agent in agents if agent["name"] == "cc")
        body = {"message": "Until when does port 8080 stay open?", "session": "rest-1"}
        found = await http.post(f"/v1/agents/{agent_id}/context", json=body, headers=auth)
        assert found.status_code == 200, found.text
        assert found.json()["recalled"] > 0 and "the 20th" in found.json()["text"]
        again = await http.post(f"/v1/agents/{agent_id}/context", json=body, headers=auth)
        assert again.json()["items"] == []  # the same session is given nothing twice
        refused = await http.post(f"/v1/agents/{agent_id}/context", json={"max_tokens": 5}, headers=auth)
        assert refused.status_code == 422 and "max_tokens" in refused.json()["detail"]


@pytest.mark.anyio
async def test_the_hook_command_answers_through_a_running_server_importing_little(
    database_url: str, tmp_path: Path
) -> None:
    """`--url`: the event goes to the server's /hooks/claude-code with the token from ENGRAM_HOOK_TOKEN, in a
    process that imports neither Engram's settings nor SQLAlchemy; with no server there, it answers in process."""
    await anyio.to_thread.run_sync(lambda: import_earlier(database_url, tmp_path, "--principal", "team"))
    prompt = {"hook_event_name": "UserPromptSubmit", "session_id": "f1", "prompt": "Which port will billing use?"}
    probe = (
        "import sys; from engram.server.cli import main; code = main(sys.argv[1:]); "
        "print(sorted(name for name in ('sqlalchemy', 'engram.server.settings') if name in sys.modules), "
        "code, file=sys.stderr)"
    )

    def forward(url: str, event: dict[str, Any], token: str | None) -> subprocess.CompletedProcess[str]:
        environment = {"ENGRAM_DATABASE_URL": database_url} | ({"ENGRAM_HOOK_TOKEN": token} if token else {})
        return subprocess.run(
            [sys.executable, "-c", probe, "hook", "claude-code", "--url", url, "--agent", "cc"],
            input=json.dumps(event),
            capture_output=True,
            text=True,
            env={key: value for key, value in os.environ.items() if key != "ENGRAM_HOOK_TOKEN"} | environment,
            timeout=120,
        )

    async with engram_http(database_url, environment={"ENGRAM_TOKENS": "team=hook-token-0123456789"}) as base_url:
        given = await anyio.to_thread.run_sync(lambda: forward(base_url, prompt, "hook-token-0123456789"))
        assert "8443" in context_of(given, "UserPromptSubmit")
        assert given.stderr.strip() == "[] 0"  # nothing heavy imported, exit 0
        refused = await anyio.to_thread.run_sync(lambda: forward(base_url, prompt, None))
        assert refused.returncode == 0 and refused.stdout == ""  # never blocks the prompt
        assert "answered 401" in refused.stderr and "ENGRAM_HOOK_TOKEN" in refused.stderr
    # the server is gone: the same command answers in process (as principal `local`, so no memory of `team`)
    alone = await anyio.to_thread.run_sync(lambda: forward(base_url, prompt, None))
    assert alone.returncode == 0, alone.stderr
    assert "answering in process" in alone.stderr
    assert json.loads(alone.stdout)["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
