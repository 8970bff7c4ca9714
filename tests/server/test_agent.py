"""send_message through real MCP clients: the host's model through sampling (with tool use), progress and log
notifications, litellm's mock responses, and the error that says which model to configure."""

from __future__ import annotations

import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.client.session import ClientRequestContext
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from engram.server.app import build_server
from engram.server.settings import Settings
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


async def test_without_a_model_or_sampling_send_message_names_what_to_configure(client: Client) -> None:
    message = await call_error(client, "send_message", message="hello")
    assert "llm_model" in message and "ENGRAM_LLM_MODEL" in message and "sampling" in message


async def test_an_agents_own_litellm_model_answers_with_mock_responses(settings: Settings, client: Client) -> None:
    await call(client, "agent_create", name="mocked")
    engine = create_engine(settings.sqlalchemy_url() or "", poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE agents SET llm = CAST(:llm AS jsonb) WHERE name = 'mocked'"),
            {
                "llm": '{"model": "openai/gpt-4o-mini", "context_window": 16000, '
                '"options": {"mock_response": "Hello from the mock."}}'
            },
        )
    engine.dispose()
    reply = await call(client, "send_message", message="hi", agent="mocked", conversation="c1")
    assert reply["reply"] == "Hello from the mock." and reply["model"] == "openai/gpt-4o-mini"
    transcript = await client.read_resource("engram://agents/mocked/conversations/c1")
    assert "Hello from the mock." in transcript.contents[0].text  # type: ignore[union-attr]
