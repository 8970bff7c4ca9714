"""What the model should know now, over REST: memory_context for an agent (Engram's route, not Letta's)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from engram.server.rest.scope import ScopeDep
from engram.tools.memory import context, records
from engram.tools.memory.context import MAX_SESSION_CHARS, MAX_TOKENS, MIN_TOKENS

router = APIRouter()


class ContextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(
        default="", description="The user's message; empty at a session's start (core memory and recent activity)."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=MIN_TOKENS,
        le=MAX_TOKENS,
        description="Most tokens of memory to return; default: the server's context_prompt_tokens (a message) or "
        "context_session_tokens (an empty one).",
    )
    session: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SESSION_CHARS,
        description="Your session's id: what this session was given before is not given again.",
    )
    conversation: str | None = Field(
        default=None,
        description="The session's own conversation in recall memory: its messages are never recalled, and its "
        "summary (when the built-in agent has one) is given.",
    )


@router.post("/agents/{agent_id}/context", tags=["engram: context"])
async def agent_context(
    agent_id: str, body: ContextRequest, scope: ScopeDep, request: Request
) -> context.MemoryContext:
    """memory_context: the agent's core memory, then the passages and conversation parts that bear on the message
    (best first, dated), within the token budget; `text` is ready to give a model."""
    name = await records.agent_name(scope, records.parse_id("agent", agent_id))
    return await context.memory_context(
        scope,
        body.message,
        name,
        body.max_tokens,
        session=body.session,
        conversation=body.conversation,
        budget=request.app.state.settings.context_budget(),
    )
