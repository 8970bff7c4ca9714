"""The agent's LLM through MCP sampling: the host's own model answers `sampling/createMessage`, no API key.

Chat messages (OpenAI shape) become sampling messages: the system messages become the system prompt, a tool
call becomes tool_use content and its results one tool_result message. A host that declares sampling
without tool support gets the tool traffic as plain text and is offered no tools.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import mcp_types as types
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError, NoBackChannelError

from engram.storage.errors import ConfigurationError
from engram.tools.loop.llm import (
    FALLBACK_CONTEXT_WINDOW,
    ChatMessage,
    LLMError,
    LLMReply,
    ToolCall,
    ToolSchema,
    estimate_tokens,
)

NO_BACK_CHANNEL = (
    "this connection cannot carry sampling requests from the server to the host; set llm_model "
    "(ENGRAM_LLM_MODEL, e.g. 'anthropic/claude-sonnet-4-5' with ANTHROPIC_API_KEY) to use a model directly"
)


def sampling_supported(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.sampling is not None


class SamplingLLM:
    """The host's model, asked through the session of the request being served."""

    def __init__(self, ctx: Context, *, context_window: int = 0, max_tokens: int = 1024) -> None:
        self._ctx = ctx
        self._window = context_window or FALLBACK_CONTEXT_WINDOW
        self._max_tokens = max_tokens
        capabilities = ctx.client_capabilities
        self._tools = bool(capabilities and capabilities.sampling and capabilities.sampling.tools is not None)

    @property
    def name(self) -> str:
        return "mcp-sampling"

    @property
    def context_window(self) -> int:
        return self._window

    def count_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> int:
        return estimate_tokens(messages, tools)  # the host's model and tokenizer are unknown here

    async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> LLMReply:
        system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
        chat = [m for m in messages if m["role"] != "system"]
        offered = [_tool(schema) for schema in tools] if self._tools else []
        sampling = sampling_messages(chat, with_tools=self._tools)
        try:
            with warnings.catch_warnings():  # sampling is deprecated in the newest protocol; hosts still use it
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                result = await self._ctx.session.create_message(
                    sampling,
                    max_tokens=self._max_tokens,
                    system_prompt=system or None,
                    tools=offered or None,
                    related_request_id=self._ctx.request_id,
                )
        except NoBackChannelError as exc:
            raise ConfigurationError(NO_BACK_CHANNEL) from exc
        except MCPError as exc:
            raise LLMError(f"the host's model (MCP sampling) failed: {exc}") from exc
        content: Any = result.content
        blocks = content if isinstance(content, list) else [content]
        text = "".join(block.text for block in blocks if isinstance(block, types.TextContent))
        calls = [
            ToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input))
            for block in blocks
            if isinstance(block, types.ToolUseContent)
        ]
        return LLMReply(text=text, tool_calls=calls)


def _tool(schema: ToolSchema) -> types.Tool:
    function = schema["function"]
    return types.Tool(name=function["name"], description=function["description"], input_schema=function["parameters"])


def sampling_messages(chat: Sequence[ChatMessage], *, with_tools: bool) -> list[types.SamplingMessage]:
    out: list[types.SamplingMessage] = []
    results: list[types.ToolResultContent] = []

    def flush() -> None:
        if results:
            out.append(types.SamplingMessage(role="user", content=list(results)))
            results.clear()

    for message in chat:
        role, text = message["role"], message.get("content") or ""
        if role == "tool":
            if with_tools:
                results.append(
                    types.ToolResultContent(
                        type="tool_result",
                        tool_use_id=message["tool_call_id"],
                        content=[types.TextContent(type="text", text=text)],
                    )
                )
            else:
                out.append(_text("user", f"[result of {message.get('name', 'tool')}] {text}"))
            continue
        flush()
        if role == "assistant" and message.get("tool_calls"):
            calls = message["tool_calls"]
            if with_tools:
                blocks: list[types.SamplingMessageContentBlock] = (
                    [types.TextContent(type="text", text=text)] if text else []
                )
                blocks += [
                    types.ToolUseContent(
                        type="tool_use",
                        id=call["id"],
                        name=call["function"]["name"],
                        input=json.loads(call["function"]["arguments"] or "{}"),
                    )
                    for call in calls
                ]
                out.append(types.SamplingMessage(role="assistant", content=blocks))
            else:
                called = "; ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in calls)
                out.append(_text("assistant", f"{text}\n[called {called}]".strip()))
            continue
        out.append(_text("assistant" if role == "assistant" else "user", text))
    flush()
    return out


def _text(role: str, text: str) -> types.SamplingMessage:
    return types.SamplingMessage(
        role="assistant" if role == "assistant" else "user", content=types.TextContent(type="text", text=text or "…")
    )
