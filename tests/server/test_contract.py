"""The surface the models see: each tool's name and input schema, pinned.

A change here is a change to every host's prompt. If it is deliberate, regenerate the snapshot with
`ENGRAM_UPDATE_CONTRACT=1 pytest tests/server/test_contract.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mcp.client.client import Client

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).with_name("tool_contract.json")


async def test_tool_names_and_input_schemas_match_the_pinned_contract(client: Client) -> None:
    listed = await client.list_tools()
    contract = {tool.name: tool.input_schema for tool in sorted(listed.tools, key=lambda t: t.name)}
    if os.environ.get("ENGRAM_UPDATE_CONTRACT"):
        SNAPSHOT.write_text(json.dumps(contract, indent=2, sort_keys=True) + "\n")
    assert contract == json.loads(SNAPSHOT.read_text())


async def test_every_tool_has_a_description_and_annotations(client: Client) -> None:
    for tool in (await client.list_tools()).tools:
        assert tool.description and len(tool.description) > 30, tool.name
        assert tool.annotations is not None, tool.name
        for name, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description") or "$ref" in schema or "anyOf" in schema, (tool.name, name)


async def test_the_server_teaches_the_host_how_to_use_memory(client: Client) -> None:
    instructions = client.instructions
    assert instructions is not None
    assert "core_memory_append" in instructions and "agent" in instructions
