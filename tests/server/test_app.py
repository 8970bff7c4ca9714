"""What `build_server` offers hosts: the tools of the `tool_profile` setting, and every resource and prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.client.client import Client

from engram.server.app import build_server
from engram.server.settings import Settings, SettingsError, load_settings
from tests.conftest import MEMORY_TOOLS, error_text, every_tool

pytestmark = pytest.mark.anyio


def with_profile(database_url: str, tmp_path: Path, tool_profile: str | None) -> Settings:
    overrides = {"database_url": database_url, "data_dir": str(tmp_path), "tool_profile": tool_profile}
    return load_settings(overrides=overrides, environ={})


async def offered(settings: Settings) -> tuple[set[str], set[str], set[str]]:
    """The names of the tools, resource templates and prompts a client of the server is offered."""
    async with Client(build_server(settings)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        templates = {template.uri_template for template in (await client.list_resource_templates()).resource_templates}
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
    return tools, templates, prompts


async def test_by_default_hosts_are_offered_only_the_tools_a_conversation_needs(
    database_url: str, tmp_path: Path
) -> None:
    tools, _, _ = await offered(with_profile(database_url, tmp_path, None))
    assert tools == MEMORY_TOOLS


async def test_the_full_profile_offers_every_tool_and_every_profile_the_same_resources_and_prompts(
    database_url: str, tmp_path: Path
) -> None:
    memory = await offered(with_profile(database_url, tmp_path, "memory"))
    full = await offered(with_profile(database_url, tmp_path, "full"))
    assert full[0] == every_tool() and MEMORY_TOOLS < full[0]
    assert full[1:] == memory[1:] and "engram://agents/{agent}/memory" in full[1]
    assert full[2] == {"memory", "memory_context"}


async def test_a_list_of_tool_names_offers_those_tools_and_may_name_a_profile(
    database_url: str, tmp_path: Path
) -> None:
    named, _, _ = await offered(with_profile(database_url, tmp_path, "core_memory_view, agent_list"))
    assert named == {"core_memory_view", "agent_list"}
    widened, _, _ = await offered(with_profile(database_url, tmp_path, "memory,agent_list"))
    assert widened == MEMORY_TOOLS | {"agent_list"}


async def test_a_tool_outside_the_profile_cannot_be_called(database_url: str, tmp_path: Path) -> None:
    async with Client(build_server(with_profile(database_url, tmp_path, "memory"))) as client:
        result = await client.call_tool("agent_delete", {"name": "default"})
    assert result.is_error and error_text(result) == "Unknown tool: agent_delete"


def test_an_unknown_tool_name_is_refused_with_the_valid_names(tmp_path: Path) -> None:
    settings = load_settings(overrides={"data_dir": str(tmp_path), "tool_profile": "memory,agent_lst"}, environ={})
    with pytest.raises(SettingsError) as refused:
        build_server(settings)
    assert str(refused.value) == (
        "invalid setting 'tool_profile': unknown tool 'agent_lst'; give 'memory', 'full', or tool names separated "
        f"by commas: {', '.join(sorted(every_tool()))}"
    )
