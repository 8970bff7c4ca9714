"""Recall memory through a real MCP client: recording, hybrid search with its filters, pagination, context,
bad input, resources, and the background embedding of recorded messages."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.client import Client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from engram.server.app import build_server
from engram.server.runtime import open_runtime
from engram.server.settings import Settings, load_settings
from engram.storage import messages as message_repo
from engram.storage.messages import MessageFilter
from engram.tools.ingest.history import import_history
from engram.tools.memory import recall
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.embedding_queue import embed_pending
from engram.tools.memory.recall import record_message
from engram.tools.scope import Scope
from tests.conftest import Invalid, call, call_error, index_use, says

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def local_scope(settings: Settings) -> AsyncIterator[Scope]:
    """The local principal's scope without a background worker (as the one-shot CLI commands run)."""
    async with open_runtime(settings) as runtime:
        yield await runtime.scope()


async def embed_all(settings: Settings) -> None:
    """Wait until every recorded message has its embedding (the server's worker may be embedding some)."""
    async with local_scope(settings) as scope:
        with anyio.fail_after(60):
            await embed_pending(scope.sessions, scope.embedder, exact_scan_limit=scope.exact_scan_limit)


async def count_messages(scope: Scope, condition: str = "true") -> int:
    async with scope.sessions.begin() as session:
        return int(await session.scalar(text(f"SELECT count(*) FROM messages WHERE {condition}")) or 0)


def line(conversation: str, role: str, content: str, created_at: str) -> dict[str, Any]:
    return {"conversation": conversation, "role": role, "content": content, "created_at": created_at}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


async def test_recorded_messages_are_found_by_words_and_by_meaning(client: Client, settings: Settings) -> None:
    said = [
        ("user", "My sister Ana adopted a beagle puppy called Pretzel last weekend.", "chat-1"),
        ("assistant", "How lovely! Beagles are friendly and curious dogs.", "chat-1"),
        ("user", "I'm flying to Lisbon on May 3rd for the Kubernetes conference.", "chat-2"),
        ("assistant", "Safe travels; remember that Lisbon is hilly, so bring comfortable shoes.", "chat-2"),
    ]
    for role, content, conversation in said:
        recorded = await call(client, "conversation_record", role=role, content=content, conversation=conversation)
        assert recorded["conversation"] == conversation
    assert recorded["ordinal"] == 2
    await embed_all(settings)

    by_word = await call(client, "conversation_search", query="Pretzel")
    assert by_word["results"][0]["text"].startswith("My sister Ana adopted")
    first = by_word["results"][0]
    assert first["role"] == "user" and first["conversation"] == "chat-1"
    assert first["after"] == "assistant: How lovely! Beagles are friendly and curious dogs."
    assert first["before"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|\+00:00)", first["created_at"])  # no microseconds

    by_meaning = await call(client, "conversation_search", query="an airplane trip abroad")
    assert "Lisbon on May 3rd" in by_meaning["results"][0]["text"]


async def test_a_message_not_yet_embedded_is_found_by_keyword(settings: Settings) -> None:
    async with local_scope(settings) as scope:
        await record_message(scope, None, "notes", "user", "The boiler code is XK-4471.", source="cli")
        assert await count_messages(scope, "embedding_model IS NULL") == 1
        from engram.tools.memory.recall import conversation_search

        found = await conversation_search(scope, "XK-4471")
    assert [hit.text for hit in found.results] == ["The boiler code is XK-4471."]


async def test_the_server_embeds_messages_left_waiting_at_its_start(settings: Settings) -> None:
    async with local_scope(settings) as scope:
        for number in range(3):
            await record_message(scope, None, None, "user", f"waiting message {number}", source="cli")
        assert await count_messages(scope, "embedding_model IS NULL") == 3
    async with open_runtime(settings, background=True) as runtime:  # what the server's lifespan runs
        assert runtime.worker is not None
        with anyio.fail_after(60):
            await runtime.worker.idle.wait()
        scope = await runtime.scope()
        assert await count_messages(scope, "embedding_model IS NULL") == 0
        await record_message(scope, None, None, "assistant", "written while the server runs", source="mcp")
        assert not runtime.worker.idle.is_set()  # the write woke the worker
        with anyio.fail_after(60):
            await runtime.worker.idle.wait()
        assert await count_messages(scope, "embedding_model IS NULL") == 0


async def test_dates_roles_and_conversation_filter_in_sql(client: Client, settings: Settings, tmp_path: Path) -> None:
    rows = [
        line("march", "user", "Booked the dentist for the molar.", "2024-03-01T09:00:00Z"),
        line("march", "tool", "dentist calendar entry created", "2024-03-01T09:00:05Z"),
        line("april", "user", "The dentist moved my molar appointment.", "2024-04-10T23:59:00Z"),
        line("may", "assistant", "Your dentist visit is on May 2nd.", "2024-05-01T00:00:00Z"),
    ]
    async with local_scope(settings) as scope:
        await import_history(scope, "default", write_jsonl(tmp_path / "chat.jsonl", rows))

    async def texts(**arguments: Any) -> list[str]:
        return [
            hit["text"] for hit in (await call(client, "conversation_search", query="dentist", **arguments))["results"]
        ]

    assert len(await texts()) == 3  # tool messages only when asked for
    assert "dentist calendar entry created" in await texts(roles=["tool"])
    assert await texts(roles=["assistant"]) == ["Your dentist visit is on May 2nd."]
    assert sorted(await texts(start_date="2024-03-02", end_date="2024-04-10")) == [
        "The dentist moved my molar appointment."  # an end date includes its whole day
    ]
    assert await texts(end_date="2024-03-01") == ["Booked the dentist for the molar."]
    assert await texts(start_date="2024-05-01T00:00:00Z") == ["Your dentist visit is on May 2nd."]
    assert await texts(conversation="april") == ["The dentist moved my molar appointment."]


async def test_earlier_searches_are_left_out_unless_tool_messages_are_asked_for(settings: Settings) -> None:
    from engram.tools.memory.recall import conversation_search

    async with local_scope(settings) as scope:
        await record_message(scope, None, None, "user", "Where did I park the camper van?", source="cli")
        async with scope.sessions.begin() as session:
            thread = await message_repo.get_conversation(session, scope.owner_id, (await _agent_id(scope)), "default")
            assert thread is not None
            await message_repo.append(
                session,
                thread,
                [
                    message_repo.NewMessage(
                        role="assistant",
                        text='conversation_search({"query": "camper van"})',
                        content={"text": "", "tool_calls": [{"name": "conversation_search"}]},
                        search_call=True,
                    )
                ],
            )
        plain = await conversation_search(scope, "camper van")
        with_tools = await conversation_search(scope, "camper van", roles=["user", "assistant", "tool"])
    assert [hit.role for hit in plain.results] == ["user"]
    assert len(with_tools.results) == 2


async def _agent_id(scope: Scope) -> Any:
    from engram.tools.memory.agents import resolve_agent

    async with scope.sessions.begin() as session:
        return (await resolve_agent(session, scope, None)).id


async def test_pages_are_stable_and_disjoint(client: Client, settings: Settings) -> None:
    for number in range(25):
        await call(client, "conversation_record", role="user", content=f"gardening note {number}: tomatoes need water")
    await embed_all(settings)  # pages are stable while the messages stay as they are
    pages = [await call(client, "conversation_search", query="tomatoes", limit=10, page=page) for page in (1, 2, 3)]
    ids = [hit["id"] for page in pages for hit in page["results"]]
    assert len(ids) == 25 and len(set(ids)) == 25
    assert [page["more"] for page in pages] == [15, 5, 0]
    assert [page.get("next") for page in pages] == [{"page": 2, "limit": 10}, {"page": 3, "limit": 10}, None]
    again = await call(client, "conversation_search", query="tomatoes", limit=10, page=2)
    assert [hit["id"] for hit in again["results"]] == [hit["id"] for hit in pages[1]["results"]]


async def test_the_hnsw_index_answers_a_large_agent_with_the_exact_scans_results(
    database_url: str, tmp_path: Path
) -> None:
    def with_limit(limit: int) -> Settings:
        overrides = {"database_url": database_url, "data_dir": str(tmp_path), "archival_exact_scan_limit": limit}
        return load_settings(overrides=overrides, environ={})

    subjects = ["the garden", "the bike", "the flat", "the car", "work", "the choir", "the allotment", "taxes"]
    said = ["My sister Lena is allergic to shellfish, so no prawns or mussels when she visits."] + [
        f"Day {n}: we talked about {subjects[n % len(subjects)]} and what is due in week {n % 52 + 1}."
        for n in range(119)
    ]  # more messages than a search's 100 candidates, so the index can answer without the exact fallback
    async with Client(build_server(with_limit(20))) as client:
        for content in said:
            await call(client, "conversation_record", role="user", content=content)
    await embed_all(with_limit(20))  # embedding builds the index once the agent has more than 20 embedded
    async with local_scope(with_limit(20)) as scope, scope.sessions.begin() as session:
        await session.execute(text("ANALYZE messages"))  # settled statistics: both searches weigh words alike
    index = "ix_messages_embedding_384"
    before = index_use(database_url, index)
    query = "which seafood must Lena avoid?"
    async with Client(build_server(with_limit(20))) as client:
        by_index = await call(client, "conversation_search", query=query, limit=50)
    scans, entries = index_use(database_url, index)
    # one scan of the index, which returned all 100 candidates: the index answered, with no exact fallback
    assert (scans - before[0], entries - before[1]) == (1, 100)
    async with Client(build_server(with_limit(10_000))) as client:
        exact = await call(client, "conversation_search", query=query, limit=50)
    assert index_use(database_url, index) == (scans, entries)  # the exact scan never touches the index
    assert by_index["results"][0]["text"] == said[0]
    assert by_index == exact


async def test_a_long_message_is_shown_around_the_words_searched_for(client: Client) -> None:
    long_text = "Filler sentence about nothing in particular. " * 60 + "The spare key is under the blue flowerpot."
    await call(client, "conversation_record", role="user", content=long_text)
    hit = (await call(client, "conversation_search", query="flowerpot"))["results"][0]
    assert hit["truncated"] and "blue flowerpot" in hit["text"] and hit["text"].startswith("…")
    assert len(hit["text"]) <= 600  # archival_result_chars


def answer_text(result: Any) -> str:
    """The text a host's model reads of a tool result (the compact JSON the server sends)."""
    return "".join(getattr(block, "text", "") for block in result.content)


def long_message_settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings whose server shows a message of up to 20,000 characters whole (archival_result_chars)."""
    return load_settings(
        overrides={"database_url": database_url, "data_dir": str(tmp_path), "archival_result_chars": 20_000},
        environ={},
    )


async def test_messages_longer_than_the_server_shows_are_cut_to_it_and_the_answer_stays_in_budget(
    client: Client,
) -> None:
    from bench.tokens import count_tokens

    for number in range(12):
        await call(client, "conversation_record", role="user", content=f"budget {number} " + "words " * 400)
    result = await client.call_tool("conversation_search", {"query": "budget words", "limit": 10})
    hits = (result.structured_content or {})["results"]
    assert hits and all(hit["truncated"] and len(hit["text"]) <= 600 for hit in hits)  # archival_result_chars
    assert count_tokens(answer_text(result)) <= recall.ANSWER_TOKENS


async def test_at_limit_50_long_messages_come_back_whole_within_the_token_budget(client: Client) -> None:
    from bench.tokens import count_tokens

    said = [
        f"Cycling log {number}: rode along the river to the old mill and back, {20 + number} km. "
        + " ".join(["The chain skipped on the climb again, so the derailleur needs adjusting before the ride."] * 4)
        for number in range(40)
    ]  # about 500 characters each
    for content in said:
        await call(client, "conversation_record", role="user", content=content)
    result = await client.call_tool("conversation_search", {"query": "cycling log derailleur", "limit": 50})
    page = result.structured_content or {}
    hits = page["results"]
    # each turn is ~500 characters (~200 tokens with its neighbours and fields): a few whole ones, not 50 stubs
    assert 3 <= len(hits) < 40 and not any(hit["truncated"] for hit in hits)
    assert all(hit["text"] in said for hit in hits)
    assert count_tokens(answer_text(result)) <= recall.ANSWER_TOKENS
    assert page["more"] == 40 - len(hits) and page["next"] == {"page": 2, "limit": len(hits)}


async def test_following_next_visits_every_match_once_in_rank_order(client: Client, settings: Settings) -> None:
    for number in range(45):  # turns of 60 to 580 characters, so that the budget ends pages at different hits
        filler = "The tomatoes by the south fence need water every second evening. " * (number % 9)
        await call(client, "conversation_record", role="user", content=f"Garden note {number}: {filler}".strip())
    await embed_all(settings)  # pages are stable while the messages stay as they are
    async with local_scope(settings) as scope:
        async with scope.sessions.begin() as session:
            agent = await resolve_agent(session, scope, None)
        ranked, _ = await recall.search_messages(scope, agent, "tomatoes", MessageFilter(), mode="hybrid")
    visited: list[str] = []
    arguments: dict[str, Any] | None = {"page": 1, "limit": 50}
    cut_short = 0
    while arguments is not None:
        page = await call(client, "conversation_search", query="tomatoes", **arguments)
        assert page["results"]
        visited += [hit["id"] for hit in page["results"]]
        assert page["more"] == len(ranked) - len(visited)
        cut_short += page.get("next") is not None and len(page["results"]) < arguments["limit"]
        arguments = page.get("next")
    assert visited == [str(message_id) for message_id, _ in ranked] and len(ranked) == 45
    assert cut_short  # some page ended at the budget before its limit, and the next one took up after it


async def test_a_message_longer_than_the_whole_budget_comes_back_cut_to_fit(database_url: str, tmp_path: Path) -> None:
    from bench.tokens import count_tokens

    filler = "Filler sentence about the garden shed and its peeling paint. "
    huge = filler * 200 + "The spare key is under the blue flowerpot. " + filler * 60  # ~16,000 characters
    async with Client(build_server(long_message_settings(database_url, tmp_path))) as client:
        await call(client, "conversation_record", role="user", content=huge)
        await call(client, "conversation_record", role="assistant", content="Noted: the key is outside.")
        result = await client.call_tool("conversation_search", {"query": "blue flowerpot", "limit": 5})
    page = result.structured_content or {}
    [cut] = page["results"]
    assert cut["truncated"] and "blue flowerpot" in cut["text"] and len(cut["text"]) > 2000
    assert cut["text"].strip("…") in huge
    assert page["more"] == 1 and page["next"] == {"page": 2, "limit": 1}
    assert recall.ANSWER_TOKENS * 0.6 <= count_tokens(answer_text(result)) <= recall.ANSWER_TOKENS


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"query": "  "}, "'query' is empty; pass the text to use"),
        (
            {"query": "x", "start_date": "March 3rd"},
            "start_date 'March 3rd' is not an ISO 8601 date or date-time; use e.g. '2025-01-31' or "
            "'2025-01-31T09:30:00Z'",
        ),
        (
            {"query": "x", "start_date": "2024-05-02", "end_date": "2024-05-01"},
            "end_date 2024-05-01 is before start_date 2024-05-02; swap them or widen the range",
        ),
        (
            {"query": "x", "conversation": "nope"},
            "agent 'default' has no conversation 'nope'; engram://agents/default/conversations lists them",
        ),
        (
            {"query": "x", "limit": 10, "page": 11},
            "page 11 with limit 10 starts past the 100 best matches; narrow the query, the dates or the "
            "conversation instead of paging further",
        ),
        (
            {"query": "x", "roles": ["robot"]},
            "'roles[0]' must be one of 'user', 'assistant', 'tool' or 'system'",
        ),
        (
            {"query": "x", "agent": "ghost"},
            "agent 'ghost' does not exist; call agent_list to see your agents, or agent_create to make it",
        ),
    ],
)
async def test_bad_search_input_gets_a_clear_error(
    client: Client, arguments: dict[str, Any], message: str | Invalid
) -> None:
    assert says(await call_error(client, "conversation_search", **arguments), message)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"role": "user", "content": ""}, "'content' is empty; pass the text to use"),
        (
            {"role": "user", "content": "x" * 200_001},
            "'content' is 200001 characters, over the maximum of 100000; send a shorter text",
        ),
        (
            {"role": "user", "content": "a\x00b"},
            "'content' contains a NUL character (\\x00), which cannot be stored; remove it",
        ),
        (
            {"role": "narrator", "content": "hi"},
            "'role' must be one of 'user', 'assistant', 'tool' or 'system'",
        ),
        (
            {"role": "user", "content": "hi", "conversation": "has spaces"},
            "conversation name 'has spaces' is not valid: use 1-200 letters, digits, '_', '.', ':', '@' or '-', "
            "starting with a letter or digit",
        ),
        (
            {"role": "user", "content": "hi", "conversation": ""},
            "conversation name '' is not valid: use 1-200 letters, digits, '_', '.', ':', '@' or '-', "
            "starting with a letter or digit",
        ),
    ],
)
async def test_bad_record_input_stores_nothing(
    client: Client, settings: Settings, arguments: dict[str, Any], message: str | Invalid
) -> None:
    await call(client, "conversation_record", role="user", content="kept")
    assert says(await call_error(client, "conversation_record", **arguments), message)
    async with local_scope(settings) as scope:
        assert await count_messages(scope) == 1


def test_a_snippet_that_reaches_the_end_of_a_message_keeps_its_last_character() -> None:
    said = "Tea, biscuits and a long chat about the garden, " * 4 + "then I left the key under the blue flowerpot."
    shown, cut = recall.snippet(said, "flowerpot", 80)
    assert cut and shown.endswith("the blue flowerpot.") and shown.startswith("…") and len(shown) <= 80
    middle, _ = recall.snippet(said, "biscuits", 40)
    assert middle.startswith("Tea, biscuits") and middle.endswith("…") and len(middle) <= 40


async def test_concurrent_records_get_distinct_ordinals(client: Client, settings: Settings) -> None:
    async def record(number: int) -> None:
        await call(client, "conversation_record", role="user", content=f"message {number}")

    async with anyio.create_task_group() as group:
        for number in range(20):
            group.start_soon(record, number)
    async with local_scope(settings) as scope:
        async with scope.sessions.begin() as session:
            ordinals = list(await session.scalars(text("SELECT ordinal FROM messages ORDER BY ordinal")))
            count = await session.scalar(text("SELECT message_count FROM conversations"))
    assert ordinals == list(range(1, 21)) and count == 20


async def test_a_recorded_message_moves_its_conversations_last_message_time_on(settings: Settings) -> None:
    async with local_scope(settings) as scope:
        first = await record_message(scope, None, "walks", "user", "Up the hill at dawn.", source="mcp")
        second = await record_message(scope, None, "walks", "assistant", "Take a headlamp.", source="mcp")
        async with scope.sessions.begin() as session:
            stored = (await session.execute(text("SELECT ordinal, created_at FROM messages ORDER BY ordinal"))).all()
            thread = (
                await session.execute(text("SELECT message_count, last_message_at, source FROM conversations"))
            ).one()
            with pytest.raises(ValueError, match="external key"):
                keyed = message_repo.NewMessage(role="user", text="x", content={"text": "x"}, external_key="k1")
                agent_id = (await resolve_agent(session, scope, None)).id
                await message_repo.record_one(session, scope.owner_id, agent_id, "walks", keyed, source="mcp")
    assert (first.ordinal, second.ordinal) == (1, 2)
    assert tuple(thread) == (2, stored[1].created_at, "mcp")


async def test_conversation_resources_list_and_page_a_transcript(client: Client) -> None:
    for number in range(60):
        await call(client, "conversation_record", role="user", content=f"line {number}", conversation="long-chat")
    await call(client, "conversation_record", role="user", content="hello", conversation="short-chat")
    listing = json.loads(_text(await client.read_resource("engram://agents/default/conversations")))
    assert [item["name"] for item in listing["conversations"]] == ["short-chat", "long-chat"]
    assert listing["conversations"][1]["messages"] == 60
    first = json.loads(_text(await client.read_resource("engram://agents/default/conversations/long-chat")))
    assert len(first["messages"]) == 50 and first["next_page"] == 2
    assert first["messages"][0]["text"] == "line 0"
    second = json.loads(_text(await client.read_resource("engram://agents/default/conversations/long-chat?page=2")))
    assert [m["ordinal"] for m in second["messages"]] == list(range(51, 61)) and second["next_page"] is None


def _text(result: Any) -> str:
    return str(result.contents[0].text)


async def test_import_is_idempotent_keeps_timestamps_and_adds_only_new_lines(
    settings: Settings, tmp_path: Path
) -> None:
    rows = [
        line("trip", "user", "Book the train to Lyon.", "2024-06-01T08:00:00Z"),
        line("trip", "assistant", "Booked TGV 6601.", "2024-06-01T08:00:09Z"),
    ]
    path = write_jsonl(tmp_path / "history.jsonl", rows)
    async with local_scope(settings) as scope:
        first = await import_history(scope, "travel", path)
        again = await import_history(scope, "travel", path)
        rows.append(
            {"conversation": "trip", "role": "user", "content": "Thanks!", "created_at": "2024-06-01T08:01:00Z"}
        )
        grown = await import_history(scope, "travel", write_jsonl(path, rows))
        async with scope.sessions.begin() as session:
            stored = (await session.execute(text("SELECT ordinal, created_at FROM messages ORDER BY ordinal"))).all()
    assert (first.messages_added, first.new_conversations, first.embedded) == (2, 1, 2)
    assert (again.messages_added, again.messages_already_stored) == (0, 2)
    assert (grown.messages_added, grown.messages_already_stored) == (1, 2)
    assert [row.ordinal for row in stored] == [1, 2, 3]
    assert stored[0].created_at.isoformat() == "2024-06-01T08:00:00+00:00"


async def test_conversation_delete_removes_its_messages_and_summaries_and_nothing_else(
    client: Client, settings: Settings
) -> None:
    for content in ("Book the sleeper to Vienna.", "Booked cabin 7."):
        await call(client, "conversation_record", role="user", content=content, conversation="trip")
    await call(
        client, "conversation_record", role="user", content="The Vienna office opens in May.", conversation="work"
    )
    async with local_scope(settings) as scope, scope.sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO summaries (owner_id, agent_id, conversation_id, first_ordinal, last_ordinal, evicted, "
                "text, kind) SELECT owner_id, agent_id, id, 1, 1, 1, 'A trip to Vienna.', 'summary' "
                "FROM conversations WHERE name = 'trip'"
            )
        )
    deleted = await call(client, "conversation_delete", conversation="trip")
    assert deleted == {"agent": "default", "conversation": "trip", "messages_deleted": 2, "summaries_deleted": 1}
    found = await call(client, "conversation_search", query="Vienna")
    assert [hit["text"] for hit in found["results"]] == ["The Vienna office opens in May."]
    async with local_scope(settings) as scope:
        assert await count_messages(scope) == 1
        async with scope.sessions.begin() as session:
            assert await session.scalar(text("SELECT count(*) FROM summaries")) == 0
    assert await call_error(client, "conversation_delete", conversation="trip") == (
        "agent 'default' has no conversation 'trip'; engram://agents/default/conversations lists them"
    )
    again = await call(client, "conversation_record", role="user", content="Back from Vienna.", conversation="trip")
    assert again["ordinal"] == 1  # the name starts a new conversation


async def test_a_message_whose_conversation_is_deleted_while_it_waits_starts_it_again(
    client: Client, database_url: str
) -> None:
    await call(client, "conversation_record", role="user", content="first", conversation="race")
    engine = create_async_engine(database_url, poolclass=NullPool)
    recorded: list[dict[str, Any]] = []

    async def record() -> None:
        recorded.append(await call(client, "conversation_record", role="user", content="second", conversation="race"))

    try:
        async with engine.connect() as deleter:
            await deleter.execute(text("SELECT id FROM conversations WHERE name = 'race' FOR UPDATE"))
            async with anyio.create_task_group() as group:
                group.start_soon(record)
                await waiting_for_a_lock(engine)  # the record waits for the conversation row, which is deleted now
                await deleter.execute(text("DELETE FROM conversations WHERE name = 'race'"))
                await deleter.commit()
        async with engine.connect() as reader:
            kept = (await reader.execute(text("SELECT text, ordinal FROM messages"))).all()
            thread = (await reader.execute(text("SELECT name, message_count FROM conversations"))).all()
    finally:
        await engine.dispose()
    # The record comes after the delete: like any first message, it starts the conversation, and is not lost.
    assert recorded[0]["ordinal"] == 1
    assert [tuple(row) for row in kept] == [("second", 1)] and [tuple(row) for row in thread] == [("race", 1)]


async def waiting_for_a_lock(engine: AsyncEngine) -> None:
    """Return once another session of this database waits for a row lock (polled from a fresh transaction)."""
    with anyio.fail_after(30):
        while True:
            async with engine.connect() as probe:
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )
                )
            if waiting:
                return
            await anyio.sleep(0.02)  # polling another session's state: PostgreSQL offers no event for it


async def test_a_delete_that_waits_for_another_delete_of_its_conversation_says_it_is_gone(
    client: Client, database_url: str
) -> None:
    await call(client, "conversation_record", role="user", content="Once.", conversation="twice")
    engine = create_async_engine(database_url, poolclass=NullPool)
    refused: list[str] = []

    async def delete() -> None:
        refused.append(await call_error(client, "conversation_delete", conversation="twice"))

    try:
        async with engine.connect() as other:
            await other.execute(text("SELECT id FROM conversations WHERE name = 'twice' FOR UPDATE"))
            async with anyio.create_task_group() as group:
                group.start_soon(delete)
                await waiting_for_a_lock(engine)  # the tool found the conversation and waits to lock it
                await other.execute(text("DELETE FROM conversations WHERE name = 'twice'"))
                await other.commit()
    finally:
        await engine.dispose()
    assert refused == ["agent 'default' has no conversation 'twice'; engram://agents/default/conversations lists them"]


async def test_an_empty_conversation_filter_is_refused_rather_than_dropped(client: Client) -> None:
    await call(client, "conversation_record", role="user", content="The ferry leaves at nine.", conversation="trip")
    message = await call_error(client, "conversation_search", query="ferry", conversation="")
    assert message == (
        "conversation name '' is not valid: use 1-200 letters, digits, '_', '.', ':', '@' or '-', "
        "starting with a letter or digit"
    )
