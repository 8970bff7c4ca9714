"""Arguments are taken as the schema says or refused in Engram's words: no unknown argument is ignored, no value
is coerced, and no value reaches the database in a form it cannot hold (issue 16)."""

from __future__ import annotations

import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import call, call_error

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("tool", "arguments", "refusal"),
    [
        (
            "archival_memory_search",
            {"query": "tea", "limit": 5},
            "it takes no argument 'limit'; its arguments are: query, tags, tag_match, start_datetime, end_datetime, "
            "top_k, page, agent",
        ),
        ("archival_memory_search", {"query": "tea", "top_k": "5"}, "'top_k' must be a whole number from 1 to 50"),
        ("archival_memory_search", {"query": "tea", "top_k": 5.5}, "'top_k' must be a whole number from 1 to 50"),
        (
            "memory_insert",
            {"label": "human", "new_str": "x", "insert_line": True},
            "'insert_line' must be a whole number of at least -1",
        ),
        ("core_memory_append", {"label": "human", "content": 7}, "'content' must be text"),
        ("agent_create", {"name": "a", "blocks": [{"label": "b", "value": 5}]}, "'blocks[0].value' must be text"),
        (
            "agent_create",
            {"name": "a", "blocks": [{"label": "b", "colour": "red"}]},
            "'blocks[0].colour' is not a field here; remove it",
        ),
        ("archival_memory_insert", {"content": "x", "tags": "travel"}, "'tags' must be a list"),
        (
            "conversation_search",
            {"query": "x", "start_date": "2" * 5000},
            "start_date is 5000 characters long, not an ISO 8601 date or date-time; use e.g. '2025-01-31' or "
            "'2025-01-31T09:30:00Z'",
        ),
        ("agent_list", {"page": 10**20}, "page 100000000000000000000 is not valid; pages run from 1 to 100000"),
        ("block_list", {"page": 100_001}, "page 100001 is not valid; pages run from 1 to 100000"),
    ],
)
async def test_a_call_outside_the_schema_is_refused_in_engrams_words(
    client: Client, tool: str, arguments: dict[str, object], refusal: str
) -> None:
    assert await call_error(client, tool, **arguments) == refusal


async def test_refused_calls_change_nothing(client: Client) -> None:
    before = (await call(client, "core_memory_view"))["text"]
    await call_error(client, "core_memory_append", label="human", content="x", agent=5)
    await call_error(client, "memory_rethink", label="human", new_memory="")
    assert (await call(client, "core_memory_view"))["text"] == before


async def test_a_resource_page_out_of_range_is_an_error_not_a_traceback(client: Client) -> None:
    with pytest.raises(MCPError, match="page -1 is not valid; pages run from 1 to 100000"):
        await client.read_resource("engram://agents?page=-1")
