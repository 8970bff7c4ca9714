"""The memory tools offered to the built-in agent's model: the same functions the MCP surface registers.

Each tool's JSON schema is built from the function's own signature (as the MCP SDK builds the host's), minus
the scope and the `agent` argument: the agent edits only its own memory.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from engram.storage.errors import EngramError
from engram.tools.memory import archival, core, recall
from engram.tools.scope import Scope

RESULT_CHARS = 4000  # a tool result the model reads is capped like a host's

Operation = Callable[..., Awaitable[Any]]

AGENT_OPERATIONS: list[Operation] = [
    core.core_memory_append,
    core.core_memory_replace,
    core.memory_insert,
    core.memory_replace,
    core.memory_rethink,
    archival.archival_memory_insert,
    archival.archival_memory_search,
    recall.conversation_search,
]
SEARCH_CALLS = {"conversation_search"}  # stored with search_call=True, so searches do not find searches


@dataclass(frozen=True)
class AgentTool:
    name: str
    description: str
    arguments: type[BaseModel]
    operation: Operation

    def schema(self) -> dict[str, Any]:
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    ok: bool


def agent_tool(operation: Operation) -> AgentTool:
    signature = inspect.signature(operation, eval_str=True)
    hints = typing.get_type_hints(operation, include_extras=True)
    fields: dict[str, Any] = {}
    for parameter in list(signature.parameters.values())[1:]:
        if parameter.name == "agent":
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (hints[parameter.name], default)
    model = create_model(f"{operation.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return AgentTool(
        name=operation.__name__,
        description=inspect.cleandoc(operation.__doc__ or operation.__name__),
        arguments=model,
        operation=operation,
    )


TOOLS: dict[str, AgentTool] = {tool.name: tool for tool in map(agent_tool, AGENT_OPERATIONS)}


def tool_schemas() -> list[dict[str, Any]]:
    return [tool.schema() for tool in TOOLS.values()]


async def run_tool(scope: Scope, agent: str, name: str, arguments_json: str) -> ToolOutcome:
    """Run one call the model made; every failure becomes a text the model can read and act on."""
    tool = TOOLS.get(name)
    if tool is None:
        return ToolOutcome(f"error: there is no tool '{name}'; the tools are: {', '.join(TOOLS)}", ok=False)
    try:
        raw = json.loads(arguments_json or "{}")
        if not isinstance(raw, dict):
            raise ValueError("the arguments must be a JSON object")
        arguments = tool.arguments.model_validate(raw)
    except (ValueError, ValidationError) as exc:
        return ToolOutcome(f"error: invalid arguments for {name}: {exc}", ok=False)
    try:
        result = await tool.operation(scope, **dict(arguments), agent=agent)
    except EngramError as exc:
        return ToolOutcome(f"error: {exc}", ok=False)
    text = result.model_dump_json() if isinstance(result, BaseModel) else str(result)
    if len(text) > RESULT_CHARS:
        text = text[:RESULT_CHARS] + f"… [cut at {RESULT_CHARS} characters]"
    return ToolOutcome(text, ok=True)
