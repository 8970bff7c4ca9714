"""The built-in agent on the MCP surface: the send_message tool, its choice of LLM, and the summary resource.

The loop itself lives in `tools/turn.py`; here it gets the request's progress reporting and, when no
litellm model is configured, the host's model through MCP sampling.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import Field

from engram.server.runtime import Runtime, scope_of
from engram.server.sampling import SamplingLLM, sampling_supported
from engram.server.settings import Settings
from engram.server.toolkit import tool_errors
from engram.storage.errors import ConfigurationError
from engram.tools.arguments import AgentArg, ConversationArg
from engram.tools.loop import turn
from engram.tools.loop.llm import LLM, LiteLLM
from engram.tools.loop.turn import AgentReply, LLMChooser, LoopConfig

NO_LLM = (
    "send_message needs a model: set llm_model in config.toml or ENGRAM_LLM_MODEL to a litellm model "
    "(e.g. 'anthropic/claude-sonnet-4-5' with ANTHROPIC_API_KEY set, or 'openai/gpt-4o-mini' with OPENAI_API_KEY), "
    "or call it from a host that supports MCP sampling"
)


def loop_config(settings: Settings) -> LoopConfig:
    return LoopConfig(
        max_steps=settings.agent_max_steps,
        context_window=settings.llm_context_window,
        trigger=settings.summarize_threshold,
        target=settings.summarize_target,
        evict_share=settings.summarize_evict_share,
    )


def litellm_for(settings: Settings, model: str, agent_llm: dict[str, Any] | None = None) -> LiteLLM:
    own = (agent_llm or {}).get("options")
    options = {**settings.llm_options, **(own if isinstance(own, dict) else {})}
    return LiteLLM(
        model,
        context_window=settings.llm_context_window or None,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout or None,
        retries=settings.llm_max_retries,
        options=options or None,
    )


def llm_chooser(settings: Settings, ctx: Context | None = None, *, model: str | None = None) -> LLMChooser:
    """`model` (chat's and summarize's --model), else the agent's own model (agents.llm->>'model'), else
    llm_model, through litellm; else the host's model through MCP sampling."""

    def choose(agent_llm: dict[str, Any]) -> LLM:
        chosen = str(model or agent_llm.get("model") or settings.llm_model)
        if chosen:
            return litellm_for(settings, chosen, agent_llm)
        if ctx is not None and sampling_supported(ctx):
            return SamplingLLM(ctx, context_window=settings.llm_context_window, max_tokens=settings.llm_max_tokens)
        raise ConfigurationError(NO_LLM)

    return choose


async def send_message(
    message: Annotated[str, Field(description="Your message to the agent.")],
    agent: AgentArg = None,
    conversation: ConversationArg = None,
    *,
    ctx: Context,
) -> AgentReply:
    """Send a message to Engram's built-in agent and get its reply.

    The agent runs on its own model (the configured one, or yours through MCP sampling), edits its own core,
    archival and recall memory, and summarizes older messages to stay within the model's window. Every
    message is stored in its recall memory; the result lists the memory tools it used.
    """
    runtime = cast(Runtime, ctx.request_context.lifespan_context)

    async def progress(step: int, total: int, text: str) -> None:
        await ctx.report_progress(step, total, text)
        with warnings.catch_warnings():  # logging is deprecated in the newest protocol; hosts still show it
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await ctx.info(text, logger_name="engram.agent")

    with tool_errors():
        return await turn.send_message(
            await scope_of(ctx),
            message,
            agent,
            conversation,
            choose_llm=llm_chooser(runtime.settings, ctx),
            config=loop_config(runtime.settings),
            progress=progress,
        )
