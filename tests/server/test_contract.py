"""The surface the models see: each tool's name and input schema, pinned (every tool: the `full` profile).

A change here is a change to every host's prompt. If it is deliberate, regenerate the snapshot with
`ENGRAM_UPDATE_CONTRACT=1 pytest tests/server/test_contract.py` (the run fails once it has written the
snapshot, so an update never passes for a check), review the diff, and run the test again without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client

from engram.server.app import build_server
from engram.server.settings import Settings

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).with_name("tool_contract.json")


@pytest.fixture
async def full(settings: Settings) -> AsyncIterator[Client]:
    """A client offered every tool (the `full` profile), whatever profile the other tests' settings use."""
    async with Client(build_server(settings.model_copy(update={"tool_profile": "full"}))) as connected:
        yield connected


async def test_tool_names_and_input_schemas_match_the_pinned_contract(full: Client) -> None:
    listed = await full.list_tools()
    contract = {tool.name: tool.input_schema for tool in sorted(listed.tools, key=lambda t: t.name)}
    if os.environ.get("ENGRAM_UPDATE_CONTRACT"):
        SNAPSHOT.write_text(json.dumps(contract, indent=2, sort_keys=True) + "\n")
        pytest.fail(f"ENGRAM_UPDATE_CONTRACT is set: wrote {SNAPSHOT.name}; review its diff, then run without it")
    assert contract == json.loads(SNAPSHOT.read_text())


async def test_every_tool_has_a_description_and_annotations(full: Client) -> None:
    for tool in (await full.list_tools()).tools:
        assert tool.description and len(tool.description) > 30, tool.name
        assert tool.annotations is not None, tool.name
        for path, schema in properties(tool.input_schema, tool.name):
            assert schema.get("description"), f"{path} has no description"


def properties(schema: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of a schema with its path, nested ones included (in $defs, items, anyOf branches)."""
    if isinstance(schema, dict):
        for name, value in schema.get("properties", {}).items():
            yield f"{path}.{name}", value
        for key, value in schema.items():
            yield from properties(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from properties(value, f"{path}[{index}]")


async def test_the_server_teaches_the_host_how_to_use_memory(client: Client) -> None:
    instructions = client.instructions
    assert instructions is not None
    assert "core_memory_append" in instructions and "agent" in instructions
