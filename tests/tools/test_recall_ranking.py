"""How conversation_search ranks what both legs found: the days a question names, the conversation a message
belongs to, and keyword scores that do not hold a turn's length against it (bench/locomo_dev.py measures the
effect on real dialogue)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mcp.client.client import Client

from engram.server.runtime import open_runtime
from engram.server.settings import Settings
from engram.storage.messages import MessageFilter
from engram.tools.ingest.history import import_history
from engram.tools.memory import recall
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.when import named_spans
from tests.conftest import call

pytestmark = pytest.mark.anyio


def write_jsonl(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = [{"conversation": name, "role": "user", "content": said, "created_at": at} for name, said, at in rows]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def import_lines(settings: Settings, path: Path, rows: list[tuple[str, str, str]]) -> None:
    """Import (conversation, text, ISO time) rows as the user's messages, embedded."""
    async with open_runtime(settings) as runtime:
        await import_history(await runtime.scope(), "default", write_jsonl(path, rows))


async def texts(client: Client, query: str) -> list[str]:
    return [hit["text"] for hit in (await call(client, "conversation_search", query=query))["results"]]


async def test_a_question_naming_a_day_or_a_month_ranks_what_was_said_then_first(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    said = {
        "march": "Painted the garden fence green today.",
        "may": "Painted the garden fence blue today.",
        "july": "Painted the garden fence white today.",
    }
    await import_lines(
        settings,
        tmp_path / "fence.jsonl",
        [
            ("march", said["march"], "2024-03-01T10:00:00Z"),
            ("may", said["may"], "2024-05-08T18:30:00Z"),
            ("july", said["july"], "2024-07-20T09:00:00Z"),
        ],
    )
    assert (await texts(client, "What colour did I paint the garden fence on 8 May, 2024?"))[0] == said["may"]
    assert (await texts(client, "What colour did I paint the garden fence on March 1st 2024?"))[0] == said["march"]
    assert (await texts(client, "What colour did I paint the garden fence in July 2024?"))[0] == said["july"]
    assert (await texts(client, "What colour was the garden fence painted on 2024-05-08?"))[0] == said["may"]


async def test_of_two_identical_messages_the_one_in_a_conversation_about_the_question_ranks_first(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    twin = "Remind me about the tickets on Friday."
    await import_lines(
        settings,
        tmp_path / "twins.jsonl",
        [
            ("chores", "The washing machine is leaking again.", "2024-06-01T09:00:00Z"),
            ("chores", twin, "2024-06-01T09:01:00Z"),
            ("chores", "Buy detergent and light bulbs.", "2024-06-01T09:02:00Z"),
            ("concert", "We're going to see the Berlin Philharmonic concert in September!", "2024-06-02T09:00:00Z"),
            ("concert", "I'd like seats close to the orchestra.", "2024-06-02T09:01:00Z"),
            ("concert", twin, "2024-06-02T09:02:00Z"),  # not next to the concert turn: its neighbour bonus is none
        ],
    )
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        async with scope.sessions.begin() as session:
            agent = await resolve_agent(session, scope, None)
        ranked, hits = await recall.search_messages(
            scope, agent, "tickets for the Philharmonic concert", MessageFilter(), mode="hybrid", size=10
        )
    twins = [hit.conversation for hit in hits if hit.text == twin]
    assert twins == ["concert", "chores"], [(hit.conversation, hit.text, hit.score) for hit in hits]
    assert len(ranked) >= 2


async def test_a_longer_turn_holding_the_words_searched_for_scores_as_high_as_a_short_one(
    settings: Settings, tmp_path: Path
) -> None:
    short = "The harbour ferry leaves at noon."
    long = (
        "We walked along the old town walls for hours, stopped for coffee twice, bought far too many postcards, "
        "and only then realised the harbour ferry leaves at noon."
    )
    await import_lines(
        settings,
        tmp_path / "ferry.jsonl",
        [
            ("trip", short, "2024-08-01T09:00:00Z"),
            ("trip", "Unrelated: the cat is asleep.", "2024-08-01T09:01:00Z"),
            ("trip", long, "2024-08-01T09:02:00Z"),
        ],
    )
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        async with scope.sessions.begin() as session:
            agent = await resolve_agent(session, scope, None)
        ranked, hits = await recall.search_messages(
            scope, agent, "harbour ferry", MessageFilter(), mode="keyword", size=10
        )
    scores = {hit.text: hit.score for hit in hits}
    # the best keyword match counts fully (the leg's whole weight), whatever its length
    assert scores[short] == scores[long] == recall.KEYWORD_WEIGHT, scores
    assert len(ranked) == 2


def test_dates_are_read_in_the_usual_english_forms_and_bare_years_or_impossible_days_are_not_days() -> None:
    def days(query: str) -> list[tuple[str, str]]:
        return [(start.date().isoformat(), end.date().isoformat()) for start, end in named_spans(query)]

    may_8 = [("2023-05-07", "2023-05-10")]  # a day either side
    for query in ("on 8 May, 2023", "the 8th of May 2023", "May 8, 2023", "may 8th 2023", "2023-05-08"):
        assert days(query) == may_8, query
    assert days("in Sept. 2021") == [("2021-08-31", "2021-10-02")]
    assert days("in December 2023") == [("2023-11-30", "2024-01-02")]
    assert days("the 2022 Sienna XLE") == []
    assert days("on 31 February 2023") == [("2023-01-31", "2023-03-02")]  # no such day: its month
    assert days("0000-01-01 or 1 January 0001 or December 9999") == []
    assert all(start.tzinfo is UTC for start, _ in named_spans("2024-01-01"))
    assert named_spans("what did we say yesterday?") == []
    assert isinstance(named_spans("2024-01-01")[0][0], datetime)
