"""send_message through real MCP clients: the host's model through sampling (with tool use), progress and log
notifications, litellm's mock responses, the error that says which model to configure, and each agent's own
system prompt, model and context window."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.client.session import ClientRequestContext
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.app import build_server
from engram.server.settings import Settings, load_settings
from engram.tools.loop.prompt import DEFAULT_SYSTEM_PROMPT
from tests.conftest import call, call_error

pytestmark = pytest.mark.anyio

TOOLS = types.SamplingCapability(tools=types.SamplingToolsCapability())


class HostModel:
    """A host's sampling callback: first stores a fact with a tool, then answers from the tool's result."""

    def __init__(self) -> None:
        self.requests: list[types.CreateMessageRequestParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResultWithTools:
        self.requests.append(params)
        last = params.messages[-1].content_as_list
        if last[0].type == "tool_result":
            assert isinstance(last[0].content[0], types.TextContent)
            answer: list[types.SamplingMessageContentBlock] = [
                types.TextContent(type="text", text=f"Saved: {last[0].content[0].text[:40]}")
            ]
            return types.CreateMessageResultWithTools(
                role="assistant", content=answer, model="host", stop_reason="endTurn"
            )
        use = types.ToolUseContent(
            type="tool_use", id="u1", name="core_memory_append", input={"label": "human", "content": "Owns a cat."}
        )
        return types.CreateMessageResultWithTools(role="assistant", content=[use], model="host", stop_reason="toolUse")


async def test_a_sampling_client_runs_the_agent_with_its_own_model_and_sees_each_step(settings: Settings) -> None:
    host = HostModel()
    steps: list[tuple[float, str | None]] = []
    logs: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, message))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    server = build_server(settings)
    async with Client(
        server,
        sampling_callback=host,
        sampling_capabilities=TOOLS,
        logging_callback=on_log,
        log_level="info",
        mode="legacy",
    ) as client:
        result = await client.call_tool("send_message", {"message": "I have a cat."}, progress_callback=on_progress)
        assert not result.is_error, result.content
        reply = dict(result.structured_content or {})
        memory = await call(client, "core_memory_view")
    assert reply["reply"].startswith("Saved: ") and reply["model"] == "mcp-sampling"
    assert [use["name"] for use in reply["tools_used"]] == ["core_memory_append"]
    assert "Owns a cat." in memory["text"]
    assert "<memory_blocks" in (host.requests[0].system_prompt or "")
    assert {tool.name for tool in host.requests[0].tools or []} >= {"core_memory_append", "conversation_search"}
    assert "step 1: core_memory_append" in [message for _, message in steps]
    assert [value for value, _ in steps] == sorted(value for value, _ in steps)
    assert "step 2: thinking" in logs


class TextOnlyHostModel:
    """A host whose sampling has no tool support: it reads plain text and answers with plain text."""

    def __init__(self) -> None:
        self.requests: list[types.CreateMessageRequestParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.requests.append(params)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="You own a cat."), model="host"
        )


async def test_a_host_without_tools_in_sampling_gets_no_tools_and_earlier_tool_use_as_text(settings: Settings) -> None:
    server = build_server(settings)
    async with Client(server, sampling_callback=HostModel(), sampling_capabilities=TOOLS, mode="legacy") as first:
        await call(first, "send_message", message="I have a cat.", conversation="pets")
    host = TextOnlyHostModel()
    async with Client(
        server, sampling_callback=host, sampling_capabilities=types.SamplingCapability(), mode="legacy"
    ) as client:
        reply = await call(client, "send_message", message="What pet do I have?", conversation="pets")
    assert (reply["reply"], reply["model"], reply["tools_used"]) == ("You own a cat.", "mcp-sampling", [])
    [request] = host.requests
    assert request.tools is None
    assert "<memory_blocks" in (request.system_prompt or "") and "Owns a cat." in (request.system_prompt or "")
    kinds = [[block.type for block in message.content_as_list] for message in request.messages]
    assert all(kind == ["text"] for kind in kinds), kinds
    texts = [block.text for message in request.messages for block in message.content_as_list if block.type == "text"]
    assert texts[0] == "I have a cat."
    assert '[called core_memory_append({"label": "human", "content": "Owns a cat."})]' in texts
    assert any(text.startswith("[result of core_memory_append] ") and "Owns a cat." in text for text in texts)
    assert texts[-1] == "What pet do I have?"


async def test_a_rate_limited_model_is_reported_as_unavailable_with_what_to_do(
    database_url: str, tmp_path: Path
) -> None:
    overrides = {"database_url": database_url, "data_dir": str(tmp_path), "llm_max_retries": 0, "tool_profile": "full"}
    async with Client(build_server(load_settings(overrides=overrides, environ={}))) as client:
        await call(client, "agent_create", name="limited")
        set_agent_llm(
            database_url,
            "limited",
            {"model": "openai/gpt-4o-mini", "options": {"mock_response": "litellm.RateLimitError"}},
        )
        message = await call_error(client, "send_message", message="hi", agent="limited")
    assert message == "openai/gpt-4o-mini is rate-limited (after 0 retries); wait and send the message again"


def set_agent_llm(database_url: str, agent: str, llm: dict[str, Any]) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE agents SET llm = CAST(:llm AS jsonb) WHERE name = :agent"),
            {"llm": json.dumps(llm), "agent": agent},
        )
    engine.dispose()


async def test_without_a_model_or_sampling_send_message_names_what_to_configure(client: Client) -> None:
    assert await call_error(client, "send_message", message="hello") == (
        "send_message needs a model: set llm_model in config.toml or ENGRAM_LLM_MODEL to a litellm model (e.g. "
        "'anthropic/claude-sonnet-4-5' with ANTHROPIC_API_KEY set, or 'openai/gpt-4o-mini' with OPENAI_API_KEY), "
        "or call it from a host that supports MCP sampling"
    )


async def test_an_agents_own_litellm_model_answers_with_mock_responses(settings: Settings, client: Client) -> None:
    await call(client, "agent_create", name="mocked")
    set_agent_llm(
        settings.sqlalchemy_url() or "",
        "mocked",
        {"model": "openai/gpt-4o-mini", "context_window": 16000, "options": {"mock_response": "Hello from the mock."}},
    )
    reply = await call(client, "send_message", message="hi", agent="mocked", conversation="c1")
    assert reply["reply"] == "Hello from the mock." and reply["model"] == "openai/gpt-4o-mini"
    transcript = await client.read_resource("engram://agents/mocked/conversations/c1")
    assert "Hello from the mock." in transcript.contents[0].text  # type: ignore[union-attr]


PIRATE = "You are a pirate who keeps a ship's log in memory. Answer in pirate speech."


async def test_send_message_gives_the_model_the_agents_own_system_prompt_until_it_is_reset(settings: Settings) -> None:
    host = HostModel()
    async with Client(
        build_server(settings), sampling_callback=host, sampling_capabilities=TOOLS, mode="legacy"
    ) as client:
        await call(client, "agent_create", name="pirate", system=PIRATE)
        await call(client, "send_message", message="I have a cat.", agent="pirate")
        await call(client, "agent_update", name="pirate", system="")
        await call(client, "send_message", message="I have a cat.", agent="pirate")
    own, default = (request.system_prompt or "" for request in (host.requests[0], host.requests[2]))
    assert own.startswith(f'{PIRATE}\n\n<memory_blocks agent="pirate">') and DEFAULT_SYSTEM_PROMPT not in own
    assert default.startswith(f'{DEFAULT_SYSTEM_PROMPT}\n\n<memory_blocks agent="pirate">')


def add_llm_options(database_url: str, agent: str, options: dict[str, Any]) -> None:
    """Give the agent's model litellm options (here mock_response: litellm answers without a provider)."""
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE agents SET llm = llm || jsonb_build_object('options', CAST(:options AS jsonb)) WHERE name = :n"
            ),
            {"options": json.dumps(options), "n": agent},
        )
    engine.dispose()


async def test_the_model_given_to_agent_create_or_agent_update_answers_for_the_agent(
    settings: Settings, client: Client
) -> None:
    await call(client, "agent_create", name="mocked", model="openai/gpt-4o-mini")
    add_llm_options(settings.sqlalchemy_url() or "", "mocked", {"mock_response": "Hello from the mock."})
    first = await call(client, "send_message", message="hi", agent="mocked")
    assert (first["reply"], first["model"]) == ("Hello from the mock.", "openai/gpt-4o-mini")
    await call(client, "agent_update", name="mocked", model="openai/gpt-4.1-mini")
    second = await call(client, "send_message", message="hi again", agent="mocked")
    assert (second["reply"], second["model"]) == ("Hello from the mock.", "openai/gpt-4.1-mini")


async def test_an_agents_own_context_window_wins_over_the_servers(database_url: str, tmp_path: Path) -> None:
    overrides = {
        "database_url": database_url,
        "data_dir": str(tmp_path),
        "llm_context_window": 1_000_000,
        "tool_profile": "full",
    }
    async with Client(build_server(load_settings(overrides=overrides, environ={}))) as client:
        for name, window in (("small", 4096), ("large", None)):
            await call(client, "agent_create", name=name, model="openai/gpt-4o-mini", context_window=window)
            add_llm_options(database_url, name, {"mock_response": "Noted."})
            for n in range(10):
                long_text = f"Message {n}: " + "the quick brown fox jumps over the lazy dog. " * 40
                await call(client, "conversation_record", agent=name, conversation="c", role="user", content=long_text)
        small = await call(client, "send_message", message="hi", agent="small", conversation="c")
        large = await call(client, "send_message", message="hi", agent="large", conversation="c")
    assert small["summaries_made"] >= 1 and large["summaries_made"] == 0
