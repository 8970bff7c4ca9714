"""memory_context: core memory always, what bears on the message within the budget, nothing for an unrelated
message, nothing twice in one session and never the session's own messages; the MCP tool and prompt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.client.client import Client

from engram.server.runtime import open_runtime
from engram.server.settings import Settings
from engram.storage import summaries as summary_repo
from engram.tools.ingest.history import import_history
from engram.tools.memory import archival, context
from engram.tools.memory.agents import agent_create, resolve_agent
from engram.tools.memory.context import CHARS_PER_TOKEN, MemoryContext, forget_session, memory_context
from engram.tools.memory.embedding_queue import embed_pending
from engram.tools.memory.recall import find_conversation, record_message
from engram.tools.scope import Scope
from tests.conftest import call

pytestmark = pytest.mark.anyio

TRIP = [
    ("user", "We booked the night train from Lisbon to Madrid for the third of May, sleeper cabin 14."),
    ("assistant", "Noted: Lisbon to Madrid by night train on 3 May, cabin 14. I will remind you to pack earplugs."),
    ("user", "My sister Ines will meet us at Madrid Chamartin station in the morning."),
    ("assistant", "Great, Ines meets you at Chamartin when the train arrives."),
]
BUILD = [
    ("user", "The staging deploy failed again because the Postgres migration timed out."),
    ("assistant", "We raised the statement timeout to 120 seconds for the migration job and it passed."),
]
UNRELATED = [
    "Write a regular expression that matches IPv6 addresses.",
    "What is the boiling point of liquid nitrogen in kelvin?",
    "Summarise the causes of the First World War.",
]


@pytest.fixture
async def scope(settings: Settings) -> AsyncIterator[Scope]:
    async with open_runtime(settings) as runtime:
        yield await runtime.scope()


async def remember(scope: Scope, tmp_path: Path, agent: str = "default") -> None:
    """Two earlier conversations (dated), a note in archival memory, everything embedded."""
    rows = [
        {"conversation": "trip-planning", "role": role, "content": text, "created_at": f"2025-03-02T10:0{n}:00Z"}
        for n, (role, text) in enumerate(TRIP)
    ] + [
        {"conversation": "deploys", "role": role, "content": text, "created_at": f"2025-04-11T09:0{n}:00Z"}
        for n, (role, text) in enumerate(BUILD)
    ]
    export = tmp_path / "history.jsonl"
    export.write_text("".join(json.dumps(row) + "\n" for row in rows))
    await import_history(scope, agent, export)
    await archival.archival_memory_insert(
        scope, "Ines is allergic to shellfish; never book seafood restaurants when she joins.", agent=agent
    )


def recalled_text(found: MemoryContext) -> str:
    return "\n".join(item.text for item in found.items if item.kind in ("passage", "conversation"))


async def test_a_message_about_an_earlier_conversation_gets_it_with_its_date_and_source(
    scope: Scope, tmp_path: Path
) -> None:
    await remember(scope, tmp_path)
    found = await memory_context(scope, "Which cabin did we book on the night train to Madrid?")
    conversation = next(item for item in found.items if item.kind == "conversation")
    assert "cabin 14" in conversation.text and conversation.source == "trip-planning"
    assert conversation.date is not None and conversation.date.date().isoformat() == "2025-03-02"
    assert '<conversation name="trip-planning" date="2025-03-02">' in found.text
    assert [item.kind for item in found.items][:2] == ["core", "core"]  # core memory always comes first
    assert "Nothing is known about the user yet." in found.text
    assert "statement timeout" not in found.text  # the deploy conversation bears on nothing here
    note = await memory_context(scope, "Which restaurants should we avoid when Ines joins us for dinner?")
    assert any(item.kind == "passage" and "shellfish" in item.text for item in note.items)


async def test_an_unrelated_message_recalls_nothing_but_core_memory(scope: Scope, tmp_path: Path) -> None:
    await remember(scope, tmp_path)
    for message in UNRELATED:
        found = await memory_context(scope, message)
        assert found.recalled == 0, (message, recalled_text(found))
        assert [item.kind for item in found.items] == ["core", "core"]


async def test_acknowledgements_and_repeats_of_the_prompt_recall_nothing(scope: Scope, tmp_path: Path) -> None:
    """ "ok" or "continue" say nothing to look for; an earlier "yes, go ahead" repeats the prompt, it is no memory."""
    await remember(scope, tmp_path)
    for text in ("yes, go ahead", "continue", "ok"):
        await record_message(scope, None, "earlier-session", "user", text, source="claude-code")
    await embed_pending(scope.sessions, scope.embedder, exact_scan_limit=scope.exact_scan_limit)
    for message in ("yes, go ahead", "continue", "ok", "thanks!"):
        assert (await memory_context(scope, message)).recalled == 0, message


async def test_the_budget_holds_and_core_memory_larger_than_it_is_cut(scope: Scope, tmp_path: Path) -> None:
    await agent_create(scope, "big", human="Ada. " * 900, persona="I help Ada. " * 400)
    for number in range(30):
        await archival.archival_memory_insert(
            scope,
            f"Night train note {number}: the sleeper to Madrid leaves Lisbon at 21:{number:02d}. " * 8,
            agent="big",
        )
    for max_tokens in (300, 800, 1500):
        found = await memory_context(scope, "When does the night train to Madrid leave?", "big", max_tokens)
        assert len(found.text) <= max_tokens * CHARS_PER_TOKEN and found.tokens <= max_tokens
        assert [item.source for item in found.items if item.kind == "core"] == ["persona", "human"]
    assert found.recalled > 0  # 1500 tokens leave room for notes after the cut core memory
    session_start = await memory_context(scope, "", "big")
    assert session_start.budget == 2500 and session_start.tokens <= 2500


async def test_nothing_is_given_twice_in_a_session_and_a_cleared_session_gets_all_again(
    scope: Scope, tmp_path: Path
) -> None:
    await remember(scope, tmp_path)
    question = "Which cabin did we book on the night train to Madrid?"
    first = await memory_context(scope, question, session="s1")
    assert first.recalled > 0 and any(item.kind == "core" for item in first.items)
    again = await memory_context(scope, question, session="s1")
    assert again.items == [] and again.text == ""
    elsewhere = await memory_context(scope, question, session="s2")
    assert [item.ids for item in elsewhere.items] == [item.ids for item in first.items]
    await core_edit(scope)
    changed = await memory_context(scope, question, session="s1")
    assert [item.source for item in changed.items] == ["human"]  # only the block that changed since
    assert await forget_session(scope, None, "s1") > 0
    assert [item.ids for item in (await memory_context(scope, question, session="s1")).items][-1] in [
        item.ids for item in first.items
    ]


async def core_edit(scope: Scope) -> None:
    from engram.tools.memory.core import core_memory_append

    await core_memory_append(scope, "human", "Travels by train whenever possible.")


async def test_the_sessions_own_messages_are_never_fed_back(scope: Scope, tmp_path: Path) -> None:
    await remember(scope, tmp_path)
    said = "The ferry to Tangier leaves Algeciras at noon and takes ninety minutes."
    await record_message(scope, None, "session-7", "user", said, source="claude-code")
    await embed_pending(scope.sessions, scope.embedder, exact_scan_limit=scope.exact_scan_limit)
    question = "When does the ferry to Tangier leave Algeciras?"
    own = await memory_context(scope, question, session="session-7", conversation="session-7")
    assert "Tangier" not in own.text
    other = await memory_context(scope, question, session="session-8", conversation="session-8")
    assert "Tangier" in recalled_text(other)


async def test_an_empty_message_gives_core_memory_and_recent_activity_newest_first(
    scope: Scope, tmp_path: Path
) -> None:
    await remember(scope, tmp_path)
    found = await memory_context(scope, "", conversation="deploys")
    assert found.recalled == 0 and found.budget == 2500
    kinds = [(item.kind, item.source) for item in found.items]
    assert kinds[:2] == [("core", "persona"), ("core", "human")]
    recent = [item for item in found.items if item.kind != "core"]
    assert [item.kind for item in recent] == ["passage", "conversation"]  # 'deploys' is this session's own
    assert "Ines meets you at Chamartin" in recent[1].text and "<recent_activity>" in found.text


async def test_the_current_conversations_summary_is_given(scope: Scope, tmp_path: Path) -> None:
    await remember(scope, tmp_path)
    async with scope.sessions.begin() as session:
        agent = await resolve_agent(session, scope, None)
        thread = await find_conversation(session, scope, agent, "trip-planning")
        await summary_repo.evict(
            session, thread, through=2, evicted=2, text="Ada booked cabin 14 to Madrid.", kind="summary"
        )
    found = await memory_context(scope, "What did we plan?", conversation="trip-planning")
    [summary] = [item for item in found.items if item.kind == "summary"]
    assert summary.text == "Ada booked cabin 14 to Madrid." and '<summary conversation="trip-planning"' in found.text


async def test_max_tokens_out_of_range_is_refused_naming_the_range(scope: Scope) -> None:
    from engram.storage.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="max_tokens 50 is not valid; give 200 to 8000"):
        await memory_context(scope, "hello there", max_tokens=50)


async def test_the_tool_and_the_prompt_give_the_context(client: Client, settings: Settings, tmp_path: Path) -> None:
    async with open_runtime(settings) as runtime:
        await remember(await runtime.scope(), tmp_path)
    answer = await call(client, "memory_context", message="Which cabin did we book on the night train?")
    assert "cabin 14" in answer["text"] and "<core_memory>" in answer["text"]
    unrelated = await call(client, "memory_context", message=UNRELATED[0], max_tokens=500)
    assert "<recalled>" not in unrelated["text"] and "<core_memory>" in unrelated["text"]
    prompt = await client.get_prompt("memory_context", {"message": "Who meets us at the station in Madrid?"})
    [message] = prompt.messages
    assert "Chamartin" in getattr(message.content, "text", "")


async def test_the_instructions_ask_for_memory_context_at_the_start_of_a_task(client: Client) -> None:
    assert client.instructions is not None and "call memory_context" in client.instructions


def test_budgets_come_from_the_settings(settings: Settings) -> None:

    custom = settings.model_copy(update={"context_prompt_tokens": 900, "context_session_tokens": 3000})
    assert custom.context_budget() == context.ContextBudget(prompt_tokens=900, session_tokens=3000)
    assert settings.context_budget() == context.ContextBudget(prompt_tokens=1500, session_tokens=2500)
