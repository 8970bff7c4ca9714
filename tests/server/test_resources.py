"""Resources and the prompt, read through a real MCP client."""

from __future__ import annotations

import json

import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import call

pytestmark = pytest.mark.anyio


async def read_text(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    return "".join(getattr(content, "text", "") for content in result.contents)


async def test_agent_resources_show_state_memory_and_blocks(client: Client) -> None:
    await call(client, "agent_create", name="proj", human="Uses Python")
    listing = json.loads(await read_text(client, "engram://agents"))
    assert [a["name"] for a in listing["agents"]] == ["proj"]
    state = json.loads(await read_text(client, "engram://agents/proj"))
    assert [b["label"] for b in state["blocks"]] == ["persona", "human"]
    assert state["blocks"][1]["chars_current"] == len("Uses Python")
    memory = await read_text(client, "engram://agents/proj/memory")
    assert memory == (await call(client, "core_memory_view", agent="proj"))["text"]
    assert await read_text(client, "engram://agents/proj/blocks/human") == "Uses Python"


async def test_resource_templates_are_listed(client: Client) -> None:
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert {
        "engram://agents/{agent}",
        "engram://agents/{agent}/memory",
        "engram://agents/{agent}/blocks/{label}",
    } <= templates
    # a template, not a static resource: only templates receive the caller (whose agents to list)
    assert "engram://agents{?page}" in templates


async def test_unknown_agent_or_block_resource_is_not_found_with_a_hint(client: Client) -> None:
    with pytest.raises(
        MCPError,
        match=r"^agent 'ghost' does not exist; call agent_list to see your agents, or agent_create to make it$",
    ):
        await client.read_resource("engram://agents/ghost/memory")
    await call(client, "core_memory_view")
    with pytest.raises(MCPError, match=r"^agent 'default' has no block 'diary'; its blocks are: 'persona', 'human'$"):
        await client.read_resource("engram://agents/default/blocks/diary")


async def test_memory_prompt_injects_instructions_and_core_memory(client: Client) -> None:
    await call(client, "memory_rethink", label="human", new_memory="Name: Ada")
    prompt = await client.get_prompt("memory", {})
    text = "".join(getattr(message.content, "text", "") for message in prompt.messages)
    assert "core_memory_append" in text
    assert "<human>" in text and "Name: Ada" in text
