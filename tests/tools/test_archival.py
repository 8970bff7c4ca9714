"""Archival memory through a real MCP client, the real embedding model and a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.app import build_server
from engram.server.settings import Settings, load_settings
from engram.tools.memory import archival, budget
from tests.conftest import Invalid, call, call_error, index_use, says

pytestmark = pytest.mark.anyio

NOTES = [
    "Lena is allergic to shellfish, so no prawns or mussels when she visits.",
    "Project Halvard ships on March 3rd; Priya owns the release checklist.",
    "Order 48213 was a blue enamel kettle from the Porto shop.",
    "I prefer window seats on long train journeys.",
    "The wifi password at the cabin is written inside the fuse box door.",
    "Dentist appointment moved to the second Tuesday of April.",
]
CANDIDATES = 100  # how deep each leg of a search looks (pages reach down to the 100 best matches)


async def insert(client: Client, content: str, **arguments: Any) -> str:
    return str((await call(client, "archival_memory_insert", content=content, **arguments))["id"])


async def search(client: Client, query: str, **arguments: Any) -> list[dict[str, Any]]:
    return list((await call(client, "archival_memory_search", query=query, **arguments))["results"])


def sql(database_url: str, statement: str, **values: Any) -> list[Any]:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        result = connection.execute(text(statement), values)
        rows = list(result.all()) if result.returns_rows else []
    engine.dispose()
    return rows


async def test_identical_content_returns_the_existing_id(client: Client, database_url: str) -> None:
    first = await call(client, "archival_memory_insert", content=NOTES[0])
    again = await call(client, "archival_memory_insert", content=NOTES[0], tags=["other"])
    assert first["created"] is True and again == {"id": first["id"], "created": False}
    assert sql(database_url, "SELECT count(*) FROM passages")[0][0] == 1


async def test_search_finds_by_meaning_and_by_exact_keywords(client: Client) -> None:
    for note in NOTES:
        await insert(client, note)
    by_meaning = await search(client, "which seafood must I avoid cooking for my partner?", top_k=3)
    assert by_meaning[0]["content"] == NOTES[0]
    by_number = await search(client, "48213", top_k=3)
    assert by_number[0]["content"] == NOTES[2]
    by_name = await search(client, "what about Halvard?", top_k=3)
    assert by_name[0]["content"] == NOTES[1]
    assert 0 < by_name[0]["score"] <= 1
    assert "embedding" not in json.dumps(by_name)


async def test_tag_filters_any_and_all(client: Client) -> None:
    await insert(client, "Book the Nightjet to Vienna.", tags=["travel", "train"])
    await insert(client, "Flight to Lisbon in June.", tags=["travel", "plane"])
    await insert(client, "Train the new intern on the build.", tags=["work"])
    any_tag = await search(client, "trip", tags=["train", "plane"], tag_match="any")
    assert {hit["content"] for hit in any_tag} == {"Book the Nightjet to Vienna.", "Flight to Lisbon in June."}
    all_tags = await search(client, "trip", tags=["travel", "train"], tag_match="all")
    assert [hit["content"] for hit in all_tags] == ["Book the Nightjet to Vienna."]
    assert all(hit["tags"] for hit in all_tags)


async def test_date_filters_are_inclusive_and_applied_in_sql(client: Client, database_url: str) -> None:
    for day, note in zip(("2025-01-10", "2025-02-10", "2025-03-10"), NOTES, strict=False):
        passage_id = await insert(client, note)
        sql(
            database_url,
            "UPDATE passages SET created_at = CAST(:day AS timestamptz) + interval '12 hours' "
            "WHERE id = CAST(:id AS uuid)",
            day=day,
            id=passage_id,
        )
    in_february = await search(client, "notes", start_datetime="2025-02-10", end_datetime="2025-02-10")
    assert [hit["content"] for hit in in_february] == [NOTES[1]]
    since_february = await search(client, "notes", start_datetime="2025-02-01T00:00:00Z")
    assert {hit["content"] for hit in since_february} == {NOTES[1], NOTES[2]}
    assert await search(client, "notes", end_datetime="2024-12-31") == []


async def test_pages_are_stable_and_disjoint(client: Client) -> None:
    for n in range(25):
        await insert(client, f"Reading list entry {n}: a book about topic number {n}.", tags=["books"])
    pages = [await call(client, "archival_memory_search", query="books to read", top_k=10, page=p) for p in (1, 2, 3)]
    ids = [hit["id"] for page in pages for hit in page["results"]]
    assert len(ids) == len(set(ids)) == 25
    assert [(page["more"], page.get("next")) for page in pages] == [
        (15, {"page": 2, "top_k": 10}),
        (5, {"page": 3, "top_k": 10}),
        (0, None),
    ]
    again = await call(client, "archival_memory_search", query="books to read", top_k=10, page=2)
    assert again == pages[1]


async def test_a_page_the_budget_cuts_short_says_how_to_continue_without_skipping(client: Client) -> None:
    for n in range(25):
        await insert(client, f"Reading list entry {n}: a book about topic number {n}.", tags=["books"])
    first = await call(client, "archival_memory_search", query="books to read", top_k=50)
    shown = len(first["results"])
    assert 10 < shown < 25  # 25 short hits would cost ~2,100 tokens: the budget stops the page early
    assert first["more"] == 25 - shown and first["next"] == {"page": 2, "top_k": shown}
    ids = [hit["id"] for hit in first["results"]]
    answer = first
    while answer.get("next"):
        answer = await call(client, "archival_memory_search", query="books to read", **answer["next"])
        ids += [hit["id"] for hit in answer["results"]]
    assert answer["more"] == 0
    every = [await call(client, "archival_memory_search", query="books to read", top_k=5, page=p) for p in range(1, 6)]
    assert ids == [hit["id"] for page in every for hit in page["results"]]  # the same order, nothing skipped


@pytest.mark.parametrize("exact_scan_limit", [10_000, 3])  # exact scans, and the HNSW path with its fallback
async def test_filtered_search_returns_min_of_top_k_and_matches(
    database_url: str, tmp_path: Path, exact_scan_limit: int
) -> None:
    settings = load_settings(
        overrides={
            "database_url": database_url,
            "data_dir": str(tmp_path),
            "archival_exact_scan_limit": exact_scan_limit,
        },
        environ={},
    )
    async with Client(build_server(settings)) as client:
        for n in range(40):
            await insert(
                client, f"Meeting note {n} about the quarterly budget.", tags=["rare" if n % 13 == 0 else "common"]
            )
        rare = await search(client, "budget meeting", tags=["rare"], top_k=10)
        common = await search(client, "budget meeting", tags=["common"], top_k=10)
    assert len(rare) == 4  # notes 0, 13, 26, 39
    assert len(common) == 10
    # the HNSW index is made once an agent outgrows exact scans, not before
    indexes = sql(database_url, "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_passages_embedding_%'")
    assert indexes == ([("ix_passages_embedding_384",)] if exact_scan_limit < 40 else [])


def many_notes(count: int) -> list[str]:
    """NOTES and enough varied filler for an agent to outgrow a small exact-scan limit."""
    subjects = ["the garden", "the bike", "the flat", "the car", "work", "the choir", "the allotment", "taxes"]
    chores = ["a repair", "a payment", "a meeting", "a reminder", "a purchase", "a booking"]
    filler = [
        f"Note {n} about {subjects[n % len(subjects)]}: {chores[n % len(chores)]} due in week {n % 52 + 1}."
        for n in range(count - len(NOTES))
    ]
    return [*NOTES, *filler]


async def test_the_hnsw_index_answers_a_large_agent_with_the_exact_scans_results(
    database_url: str, tmp_path: Path
) -> None:
    def with_limit(limit: int) -> Settings:
        overrides = {"database_url": database_url, "data_dir": str(tmp_path), "archival_exact_scan_limit": limit}
        return load_settings(overrides=overrides, environ={})

    # 120 passages: more than a search's CANDIDATES, so the index can answer on its own (with fewer rows
    # than that, the index path always falls back to the exact scan)
    async with Client(build_server(with_limit(20))) as client:
        for note in many_notes(120):
            await insert(client, note)
    index = "ix_passages_embedding_384"  # built when the agent passed 20 passages
    before = index_use(database_url, index)
    query = "which seafood must I avoid cooking for my partner?"
    async with Client(build_server(with_limit(20))) as client:
        by_index = await call(client, "archival_memory_search", query=query, top_k=50)
    scans, entries = index_use(database_url, index)
    # one scan of the index, which returned all 100 candidates: the index answered, with no exact fallback
    assert (scans - before[0], entries - before[1]) == (1, CANDIDATES)
    async with Client(build_server(with_limit(10_000))) as client:
        exact = await call(client, "archival_memory_search", query=query, top_k=50)
    assert index_use(database_url, index) == (scans, entries)  # the exact scan never touches the index
    assert by_index["results"][0]["content"] == NOTES[0]
    assert by_index == exact


async def test_a_search_trusts_an_agent_is_small_until_a_write_takes_it_past_the_limit(
    database_url: str, tmp_path: Path
) -> None:
    """Searches skip the size probe for an agent they found within exact scans a moment ago; the write that
    takes it past the limit says so at once in this process, so the next search goes through the index."""
    overrides = {"database_url": database_url, "data_dir": str(tmp_path), "archival_exact_scan_limit": 110}
    index = "ix_passages_embedding_384"
    notes = many_notes(120)
    async with Client(build_server(load_settings(overrides=overrides, environ={}))) as client:
        for note in notes[:100]:
            await insert(client, note)
        query = "which seafood must I avoid cooking for my partner?"
        await call(client, "archival_memory_search", query=query)  # small: found (and remembered) so
        assert sql(database_url, f"SELECT 1 FROM pg_indexes WHERE indexname = '{index}'") == []
        for note in notes[100:]:
            await insert(client, note)
        before = index_use(database_url, index)
        found = await call(client, "archival_memory_search", query=query, top_k=50)
    assert index_use(database_url, index)[0] == before[0] + 1  # the index answered, within SMALL_AGENT_TTL
    assert found["results"][0]["content"] == NOTES[0]


async def test_delete_removes_a_passage_once(client: Client) -> None:
    passage_id = await insert(client, NOTES[3])
    assert await call(client, "archival_memory_delete", id=passage_id) == {"id": passage_id, "deleted": True}
    assert await search(client, "window seat") == []
    assert await call_error(client, "archival_memory_delete", id=passage_id) == (
        f"agent 'default' has no archival passage '{passage_id}'; archival_memory_search shows passage ids"
    )
    assert await call_error(client, "archival_memory_delete", id="42") == (
        "'42' is not a passage id; ids look like 'a3f1c2d4-…' (see archival_memory_search)"
    )


async def test_agents_do_not_see_each_others_passages(client: Client) -> None:
    await call(client, "agent_create", name="work")
    passage_id = await insert(client, "The staging database password rotates monthly.", agent="work")
    assert await search(client, "staging database password") == []
    assert (await search(client, "staging database password", agent="work"))[0]["id"] == passage_id
    assert await call_error(client, "archival_memory_delete", id=passage_id) == (
        f"agent 'default' has no archival passage '{passage_id}'; archival_memory_search shows passage ids"
    )


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("archival_memory_insert", {"content": ""}, "'content' is empty; pass the text to use"),
        (
            "archival_memory_insert",
            {"content": "x" * 100_001},
            "'content' is 100001 characters, over the maximum of 100000; send a shorter text",
        ),
        ("archival_memory_insert", {"content": "ok", "tags": [""]}, "tag '' is not valid: use 1-50 characters"),
        (
            "archival_memory_insert",
            {"content": "ok", "tags": [f"t{n}" for n in range(21)]},
            "21 tags given; use at most 20",
        ),
        (
            "archival_memory_insert",
            {"content": "ok", "agent": "ghost"},
            "agent 'ghost' does not exist; call agent_list to see your agents, or agent_create to make it",
        ),
        ("archival_memory_search", {"query": " "}, "'query' is empty; pass the text to use"),
        (
            "archival_memory_search",
            {"query": "q" * 2001},
            "'query' is 2001 characters, over the maximum of 2000; send a shorter text",
        ),
        (
            "archival_memory_search",
            {"query": "q", "top_k": 0},
            "'top_k' must be a whole number from 1 to 50",
        ),
        (
            "archival_memory_search",
            {"query": "q", "top_k": 51},
            "'top_k' must be a whole number from 1 to 50",
        ),
        (
            "archival_memory_search",
            {"query": "q", "tag_match": "some"},
            "'tag_match' must be one of 'any' or 'all'",
        ),
        (
            "archival_memory_search",
            {"query": "q", "start_datetime": "yesterday"},
            "start_datetime 'yesterday' is not an ISO 8601 date or date-time; use e.g. '2025-01-31' or "
            "'2025-01-31T09:30:00Z'",
        ),
        (
            "archival_memory_search",
            {"query": "q", "start_datetime": "2025-02-01", "end_datetime": "2025-01-01"},
            "end_datetime 2025-01-01 is before start_datetime 2025-02-01; swap them or widen the range",
        ),
        (
            "archival_memory_search",
            {"query": "q", "page": 11},
            "page 11 with top_k 10 starts past the 100 best matches; narrow the query or the filters instead of "
            "paging further",
        ),
    ],
)
async def test_bad_input_is_refused_with_what_to_change_and_stores_nothing(
    client: Client, database_url: str, tool: str, arguments: dict[str, Any], expected: str | Invalid
) -> None:
    await insert(client, NOTES[0])
    assert says(await call_error(client, tool, **arguments), expected)
    assert sql(database_url, "SELECT count(*) FROM passages")[0][0] == 1


def long_note_settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings whose server shows a passage of up to 20,000 characters whole (archival_result_chars)."""
    return load_settings(
        overrides={"database_url": database_url, "data_dir": str(tmp_path), "archival_result_chars": 20_000},
        environ={},
    )


async def test_a_search_answers_with_whole_passages_within_its_token_budget(database_url: str, tmp_path: Path) -> None:
    from bench.tokens import count_tokens

    notes = [f"Long design note {n}. " + "The cache layer keeps hot rows in memory. " * 32 for n in range(12)]
    async with Client(build_server(long_note_settings(database_url, tmp_path))) as client:
        for note in notes:
            await insert(client, note)
        result = await client.call_tool("archival_memory_search", {"query": "cache design", "top_k": 10})
    answer = "".join(getattr(block, "text", "") for block in result.content)
    page = result.structured_content or {}
    hits = page["results"]
    # each note is ~1,370 characters (~300 tokens): three whole ones fit, not ten stubs
    assert 2 <= len(hits) < 10 and not any(hit["truncated"] for hit in hits)
    assert all(hit["content"] in [note.strip() for note in notes] for hit in hits)
    assert count_tokens(answer) <= archival.ANSWER_TOKENS
    assert page["more"] == 12 - len(hits) and page["next"] == {"page": 2, "top_k": len(hits)}


@pytest.mark.parametrize(
    ("huge", "query"),
    [
        ("Tokyo itinerary: " + "temples, gardens, ramen, trains and a day at the museum; " * 200, "Tokyo itinerary"),
        ("東京の旅程 " + "寺院、庭園、ラーメン、電車、博物館での一日 🚄🏯🍜。" * 200, "東京の旅程"),
    ],
    ids=["english", "japanese-and-emoji"],
)
async def test_a_first_hit_longer_than_the_budget_is_cut_to_fit(
    database_url: str, tmp_path: Path, huge: str, query: str
) -> None:
    from bench.tokens import count_tokens

    async with Client(build_server(long_note_settings(database_url, tmp_path))) as client:
        await insert(client, huge)
        await insert(client, "Kyoto itinerary: one day of temples.")
        result = await client.call_tool("archival_memory_search", {"query": query, "top_k": 5})
    answer = "".join(getattr(block, "text", "") for block in result.content)
    page = result.structured_content or {}
    [cut] = page["results"]
    assert cut["truncated"] and huge.startswith(cut["content"].removesuffix("…")) and len(cut["content"]) > 500
    assert page["more"] == 1 and page["next"] == {"page": 2, "top_k": 1}
    assert archival.ANSWER_TOKENS * 0.6 <= count_tokens(answer) <= archival.ANSWER_TOKENS


@pytest.mark.parametrize(
    "sample",
    [
        *NOTES,
        "The cache layer keeps hot rows in memory. " * 20,
        'def parse(x):\n    return {"a": [1, 2, 3], "b": x.strip()}\n',
        "0123456789 48213 2025-01-31T12:00:00Z port 8443, ticket #48231",
        "Zürich, Genève, café, naïve résumé, Ærøskøbing",
        "Привет, как дела? Поезд в Москву уходит в 8:15.",
        "ταξίδι με τρένο στην Αθήνα",
        "東京の旅程 寺院、庭園、ラーメン、電車、博物館での一日。",
        "🚄🚃🚅 trains 🎉👍",
        "Ça coûte très cher, n'est-ce pas? Où est la gare?",
    ],
    ids=lambda sample: sample[:24],
)
def test_the_token_estimate_is_never_below_the_count(sample: str) -> None:
    from bench.tokens import count_tokens

    assert count_tokens(sample) <= budget.text_tokens(sample) <= 2 * count_tokens(sample)


async def test_score_is_a_relevance_near_1_for_a_match_and_low_for_nothing_related(client: Client) -> None:
    for note in NOTES:
        await insert(client, note)
    # the sentence with one more word: no passage holds every word, so only its meaning matches (fused: 0.5)
    [close, *_] = await search(client, "Lena is allergic to shellfish, so no prawns, no mussels when she visits Oslo.")
    assert close["content"] == NOTES[0] and close["score"] >= 0.9
    [exact, *_] = await search(client, "48213")  # holds every word of the query
    assert exact["content"] == NOTES[2] and exact["score"] == 1.0
    unrelated = await search(client, "quantum chromodynamics lecture notes")
    assert unrelated and max(hit["score"] for hit in unrelated) < 0.4


async def test_a_search_answer_reads_as_compact_json_without_nulls(client: Client) -> None:
    await insert(client, NOTES[0])
    result = await client.call_tool("archival_memory_search", {"query": "shellfish"})
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert "null" not in text and "\n" not in text and ", " not in text.replace(NOTES[0], "")
    assert (result.structured_content or {})["results"][0]["source"] is None  # the structured content keeps them


async def test_recent_passages_resource(client: Client) -> None:
    for note in NOTES[:3]:
        await insert(client, note)
    result = await client.read_resource("engram://agents/default/archival")
    recent = json.loads("".join(getattr(c, "text", "") for c in result.contents))
    assert recent["total"] == 3 and recent["passages"][0]["content"] == NOTES[2]
