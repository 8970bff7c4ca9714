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
from engram.server.settings import load_settings
from tests.conftest import call, call_error

pytestmark = pytest.mark.anyio

NOTES = [
    "Lena is allergic to shellfish, so no prawns or mussels when she visits.",
    "Project Halvard ships on March 3rd; Priya owns the release checklist.",
    "Order 48213 was a blue enamel kettle from the Porto shop.",
    "I prefer window seats on long train journeys.",
    "The wifi password at the cabin is written inside the fuse box door.",
    "Dentist appointment moved to the second Tuesday of April.",
]


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
    assert [page["has_more"] for page in pages] == [True, True, False]
    whole = await call(client, "archival_memory_search", query="books to read", top_k=30)
    assert [hit["id"] for hit in whole["results"]] == ids
    again = await call(client, "archival_memory_search", query="books to read", top_k=10, page=2)
    assert again == pages[1]


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


async def test_the_hnsw_path_is_used_and_agrees_with_the_exact_scan(database_url: str, tmp_path: Path) -> None:
    answers = {}
    for limit in (0, 10_000):  # the index (made at the first insert) for every search, then exact scans
        settings = load_settings(
            overrides={"database_url": database_url, "data_dir": str(tmp_path), "archival_exact_scan_limit": limit},
            environ={},
        )
        async with Client(build_server(settings)) as client:
            if not limit:
                for note in NOTES:
                    await insert(client, note)
            answers[limit] = [hit["id"] for hit in await search(client, "what should guests not be served?")]
    assert answers[0] == answers[10_000]
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:  # the search's ORDER BY can use the index (a table this small is
        connection.execute(text("SET LOCAL enable_seqscan = off"))  # otherwise read whole)
        plan = connection.execute(
            text(
                "EXPLAIN SELECT id FROM passages WHERE vector_dims(embedding) = 384 ORDER BY "
                "(embedding::vector(384)) <=> (SELECT embedding FROM passages LIMIT 1)::vector(384) LIMIT 5"
            )
        ).all()
    engine.dispose()
    assert "ix_passages_embedding_384" in "\n".join(row[0] for row in plan)


async def test_delete_removes_a_passage_once(client: Client) -> None:
    passage_id = await insert(client, NOTES[3])
    assert await call(client, "archival_memory_delete", id=passage_id) == {"id": passage_id, "deleted": True}
    assert await search(client, "window seat") == []
    assert "has no archival passage" in await call_error(client, "archival_memory_delete", id=passage_id)
    assert "is not a passage id" in await call_error(client, "archival_memory_delete", id="42")


async def test_agents_do_not_see_each_others_passages(client: Client) -> None:
    await call(client, "agent_create", name="work")
    passage_id = await insert(client, "The staging database password rotates monthly.", agent="work")
    assert await search(client, "staging database password") == []
    assert (await search(client, "staging database password", agent="work"))[0]["id"] == passage_id
    assert "has no archival passage" in await call_error(client, "archival_memory_delete", id=passage_id)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("archival_memory_insert", {"content": ""}, "'content' is empty"),
        ("archival_memory_insert", {"content": "x" * 100_001}, "over the maximum of 100000"),
        ("archival_memory_insert", {"content": "ok", "tags": [""]}, "tag '' is not valid"),
        ("archival_memory_insert", {"content": "ok", "tags": [f"t{n}" for n in range(21)]}, "use at most 20"),
        ("archival_memory_insert", {"content": "ok", "agent": "ghost"}, "agent 'ghost' does not exist"),
        ("archival_memory_search", {"query": " "}, "'query' is empty"),
        ("archival_memory_search", {"query": "q" * 2001}, "over the maximum of 2000"),
        ("archival_memory_search", {"query": "q", "top_k": 0}, "top_k"),
        ("archival_memory_search", {"query": "q", "top_k": 51}, "top_k"),
        ("archival_memory_search", {"query": "q", "tag_match": "some"}, "tag_match"),
        ("archival_memory_search", {"query": "q", "start_datetime": "yesterday"}, "not an ISO 8601 date"),
        (
            "archival_memory_search",
            {"query": "q", "start_datetime": "2025-02-01", "end_datetime": "2025-01-01"},
            "end_datetime 2025-01-01 is before start_datetime 2025-02-01",
        ),
        ("archival_memory_search", {"query": "q", "page": 11}, "starts past the 100 best matches"),
    ],
)
async def test_bad_input_is_refused_and_stores_nothing(
    client: Client, database_url: str, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    await insert(client, NOTES[0])
    assert expected in await call_error(client, tool, **arguments)
    assert sql(database_url, "SELECT count(*) FROM passages")[0][0] == 1


async def test_a_page_of_long_passages_stays_within_the_answer_budget(client: Client) -> None:
    for n in range(12):
        await insert(client, f"Long design note {n}. " + "The cache layer keeps hot rows in memory. " * 80)
    result = await client.call_tool("archival_memory_search", {"query": "cache design", "top_k": 10})
    answer = "".join(getattr(block, "text", "") for block in result.content)
    hits = (result.structured_content or {})["results"]
    assert len(hits) == 10 and all(hit["truncated"] for hit in hits)
    assert len(answer) < 9000  # about 2k tokens for the default top_k


async def test_recent_passages_resource(client: Client) -> None:
    for note in NOTES[:3]:
        await insert(client, note)
    result = await client.read_resource("engram://agents/default/archival")
    recent = json.loads("".join(getattr(c, "text", "") for c in result.contents))
    assert recent["total"] == 3 and recent["passages"][0]["content"] == NOTES[2]
