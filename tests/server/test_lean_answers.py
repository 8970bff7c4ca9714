"""What Engram sends a host costs it context: tools/list is lean, results are compact text beside their
structured content. Tokens are counted as bench/tokens.py counts them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.client.client import Client

from bench.tokens import count_tokens
from engram.server.app import build_server
from engram.server.settings import Settings
from tests.conftest import call

pytestmark = pytest.mark.anyio

MEMORY_PROFILE_BUDGET = 3000  # tokens of the default profile's tools/list (issue 16: it was 4.5k)


@pytest.fixture
async def memory_profile(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings.model_copy(update={"tool_profile": "memory"}))) as connected:
        yield connected


async def test_the_default_profiles_tools_list_fits_its_token_budget(memory_profile: Client) -> None:
    listed = await memory_profile.list_tools()
    assert len(listed.tools) == 12
    wire = listed.model_dump_json(by_alias=True, exclude_none=True)
    assert count_tokens(wire) <= MEMORY_PROFILE_BUDGET


async def test_tools_are_listed_without_output_schemas_but_results_keep_structured_content(client: Client) -> None:
    listed = await client.list_tools()
    assert [tool.name for tool in listed.tools if tool.output_schema is not None] == []
    result = await client.call_tool("archival_memory_insert", {"content": "The spare key is under the blue pot."})
    assert set(result.structured_content or {}) == {"id", "created"}
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert text == f'{{"id":"{(result.structured_content or {})["id"]}","created":true}}'


def schemas(schema: Any) -> list[dict[str, Any]]:
    """A schema and every schema nested in it."""
    if isinstance(schema, list):
        return [found for item in schema for found in schemas(item)]
    if not isinstance(schema, dict):
        return []
    nested = [*schema.get("properties", {}).values(), *schema.get("$defs", {}).values()]
    nested += [schema[key] for key in ("items", "additionalProperties") if isinstance(schema.get(key), dict)]
    nested += [item for key in ("anyOf", "oneOf", "allOf") for item in schema.get(key, [])]
    return [schema, *(found for item in nested for found in schemas(item))]


async def test_schemas_carry_no_titles_and_optional_arguments_read_as_their_type(client: Client) -> None:
    for tool in (await client.list_tools()).tools:
        for schema in schemas(tool.input_schema):
            assert "title" not in schema, tool.name
            assert {"type": "null"} not in schema.get("anyOf", []), tool.name
        agent = tool.input_schema["properties"].get("agent")
        if agent is not None and tool.name not in ("block_attach", "block_detach"):  # there it is required
            assert (
                agent["type"] == "string"
                and agent["maxLength"] == 100
                and "agent" not in tool.input_schema.get("required", [])
            )
            assert "default agent" in agent["description"], tool.name


async def test_an_explicit_null_for_an_optional_argument_is_still_accepted(client: Client) -> None:
    view = await call(client, "core_memory_view", agent=None)
    assert '<memory_blocks agent="default">' in view["text"]


async def test_descriptions_are_paragraphs_without_docstring_indentation(client: Client) -> None:
    for tool in (await client.list_tools()).tools:
        description = tool.description or ""
        assert "\n " not in description and not description.endswith((" ", "\n")), tool.name
        for paragraph in description.split("\n\n"):
            lines = paragraph.split("\n")
            assert all(line.startswith("- ") for line in lines[1:]), (tool.name, paragraph)


async def test_annotations_leave_out_what_mcp_assumes(client: Client) -> None:
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    hints = {
        name: (tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else None)
        for name, tool in listed.items()
    }
    assert hints["archival_memory_search"] == {"readOnlyHint": True, "openWorldHint": False}
    assert hints["core_memory_append"] == {"destructiveHint": False, "openWorldHint": False}
    assert hints["archival_memory_delete"] == {"idempotentHint": True, "openWorldHint": False}
    assert hints["send_message"] == {"destructiveHint": False}
