"""memory_context on the MCP surface.

The retrieval lives in `tools/memory/context.py`; the tool is a server function (like send_message) only
because its default budget is a setting, read from the runtime of the request.
"""

from __future__ import annotations

from typing import Annotated, cast

from mcp.server.mcpserver import Context
from pydantic import Field

from engram.server.runtime import Runtime, scope_of
from engram.server.toolkit import tool_errors
from engram.tools.arguments import AgentArg
from engram.tools.memory import context
from engram.tools.memory.context import MAX_TOKENS, MIN_TOKENS

NOTHING = "Engram's memory holds nothing for this agent yet."

Message = Annotated[
    str,
    Field(
        description="The user's request or the task at hand, as said; '' at the start of a conversation (then: "
        "core memory and recent activity)."
    ),
]
MaxTokens = Annotated[
    int | None,
    Field(
        ge=MIN_TOKENS,
        le=MAX_TOKENS,
        description="Most tokens to return; default: the server's budget (1500 for a message, 2500 for '').",
    ),
]


async def memory_context(
    message: Message, agent: AgentArg = None, max_tokens: MaxTokens = None, *, ctx: Context
) -> str:
    """What long-term memory holds for the task: core memory, then the past conversations and archival notes
    that match `message` (best first, each dated, with its source), within a token budget.

    Call it at the start of a task with the user's request, and with '' at the start of a conversation. When
    nothing matches, only core memory comes back.
    """
    runtime = cast(Runtime, ctx.request_context.lifespan_context)
    with tool_errors():
        found = await context.memory_context(
            await scope_of(ctx), message, agent, max_tokens, budget=runtime.settings.context_budget()
        )
    return found.text or NOTHING
