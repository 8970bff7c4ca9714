"""The composition root: `build_server(settings)` makes the MCP server and registers everything it offers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from mcp_types import Tool as ListedTool
from pydantic import Field

from engram.server import engram_version
from engram.server.context import memory_context
from engram.server.instructions import INSTRUCTIONS
from engram.server.runtime import DatabaseOpener, Runtime, open_runtime, scope_of
from engram.server.send_message import send_message
from engram.server.settings import Settings, SettingsError, ToolProfile
from engram.server.toolkit import as_mcp_tool, check_arguments, compact, lean_listing, resource_errors
from engram.tools.loop import turn
from engram.tools.memory import agents, archival, blocks, context, core, recall

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
EDIT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)

AGENT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)

MEMORY: ToolProfile = "memory"
FULL: ToolProfile = "full"

# Every tool the server can offer, with the profile that offers it. `memory` (the default) is what a model
# needs during a conversation; `full` offers every tool: managing agents and blocks, deletes, history and
# undo. The `tool_profile` setting chooses (a profile, or tool names), since every tool costs the host context.
TOOLS: list[tuple[Callable[..., Any], ToolAnnotations, ToolProfile]] = [
    (memory_context, READ_ONLY, MEMORY),
    (core.core_memory_view, READ_ONLY, MEMORY),
    (core.core_memory_append, EDIT, MEMORY),
    (core.core_memory_replace, EDIT, MEMORY),
    (core.memory_insert, EDIT, MEMORY),
    (core.memory_replace, EDIT, MEMORY),
    (core.memory_rethink, EDIT, MEMORY),
    (core.core_memory_history, READ_ONLY, FULL),
    (core.core_memory_undo, EDIT, FULL),
    (archival.archival_memory_insert, EDIT, MEMORY),
    (archival.archival_memory_search, READ_ONLY, MEMORY),
    (archival.archival_memory_delete, DESTRUCTIVE, FULL),
    (recall.conversation_record, EDIT, MEMORY),
    (recall.conversation_search, READ_ONLY, MEMORY),
    (recall.conversation_delete, DESTRUCTIVE, FULL),
    (agents.agent_create, EDIT, FULL),
    (agents.agent_update, EDIT, FULL),
    (agents.agent_list, READ_ONLY, FULL),
    (agents.agent_delete, DESTRUCTIVE, FULL),
    (blocks.block_create, EDIT, FULL),
    (blocks.block_list, READ_ONLY, FULL),
    (blocks.block_attach, EDIT, FULL),
    (blocks.block_detach, EDIT, FULL),
    (blocks.block_delete, DESTRUCTIVE, FULL),
    (send_message, AGENT, MEMORY),
]


def build_server(
    settings: Settings, runtime: Runtime | None = None, *, opener: DatabaseOpener | None = None
) -> MCPServer[Runtime]:
    """Create Engram's MCP server.

    With `runtime`, every MCP session shares it and whoever created it runs it (over HTTP, the ASGI app).
    Without, each run of the server (a stdio process, an in-memory client) runs its own, opening the
    database with `opener` if given (the CLI starts the embedded server early).
    """

    @asynccontextmanager
    async def lifespan(_server: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
        if runtime is not None:
            yield runtime
            return
        async with open_runtime(settings, opener, background=True) as own:
            yield own

    server: MCPServer[Runtime] = StrictServer(
        "engram",
        title="Engram memory",
        instructions=INSTRUCTIONS,
        version=engram_version(),
        lifespan=lifespan,
        log_level=settings.log_level,
    )
    for function, hints in offered_tools(settings.tool_profile):
        # send_message needs the request itself (sampling, progress), memory_context the server's budgets: they
        # are MCP tools as they are
        tool = function if function in (send_message, memory_context) else as_mcp_tool(function, scope_of)
        server.add_tool(tool, annotations=hints)
    _register_resources(server)
    _register_prompts(server, settings)
    return server


class StrictServer(MCPServer[Runtime]):
    """The SDK's server, with arguments checked strictly and explained in Engram's words (toolkit.check_arguments)
    before a tool runs, results sent as compact text beside their structured content (toolkit.compact), and
    tools listed leanly (toolkit.lean_listing)."""

    async def list_tools(self) -> list[ListedTool]:
        return [lean_listing(tool) for tool in await super().list_tools()]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Runtime, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is not None:
            check_arguments(tool, arguments)
        result = await super().call_tool(name, arguments, context)
        if tool is not None and not tool.fn_metadata.wrap_output and isinstance(result, CallToolResult):
            return compact(result)
        return result


def offered_tools(tool_profile: str) -> list[tuple[Callable[..., Any], ToolAnnotations]]:
    """The tools `tool_profile` offers, in TOOLS order: a profile's, or those named (tool and profile names
    separated by commas). An unknown name is refused with the valid ones."""
    profiles: dict[str, set[str]] = {
        MEMORY: {function.__name__ for function, _, profile in TOOLS if profile == MEMORY},
        FULL: {function.__name__ for function, _, _ in TOOLS},
    }
    wanted: set[str] = set()
    for name in tool_profile.split(","):
        if name in profiles:
            wanted |= profiles[name]
        elif name in profiles[FULL]:
            wanted.add(name)
        else:
            raise SettingsError(
                f"invalid setting 'tool_profile': unknown tool '{name}'; give 'memory', 'full', or tool names "
                f"separated by commas: {', '.join(sorted(profiles[FULL]))}"
            )
    return [(function, hints) for function, hints, _ in TOOLS if function.__name__ in wanted]


def _register_resources(server: MCPServer[Runtime]) -> None:
    @server.resource("engram://agents{?page}", name="agents", mime_type="application/json")
    async def agent_index(ctx: Context, page: int = 1) -> str:
        """Your agents, 100 a page by name (engram://agents?page=2 for the next)."""
        with resource_errors():
            listing = await agents.agent_list(await scope_of(ctx), page=page, page_size=agents.MAX_PAGE_SIZE)
        return listing.model_dump_json()

    @server.resource("engram://agents/{agent}", name="agent", mime_type="application/json")
    async def agent_state(agent: str, ctx: Context) -> str:
        """An agent's state: description, tags, the built-in agent's system prompt (shortened), model and context
        window, and its blocks with their sizes and limits."""
        with resource_errors():
            info = await agents.agent_show(await scope_of(ctx), agent)
        return info.model_dump_json()

    @server.resource("engram://agents/{agent}/memory", name="core-memory", mime_type="text/plain")
    async def agent_memory(agent: str, ctx: Context) -> str:
        """The agent's core memory, rendered exactly as it enters the agent's context."""
        with resource_errors():
            return await core.core_memory_view(await scope_of(ctx), agent)

    @server.resource("engram://agents/{agent}/archival", name="archival", mime_type="application/json")
    async def archival_recent(agent: str, ctx: Context) -> str:
        """The agent's 20 most recent archival passages and how many it has in all."""
        with resource_errors():
            recent = await archival.recent_passages(await scope_of(ctx), agent)
        return recent.model_dump_json()

    @server.resource("engram://agents/{agent}/conversations", name="conversations", mime_type="application/json")
    async def conversation_index(agent: str, ctx: Context) -> str:
        """The agent's conversations in recall memory (the 100 most recently active) and how many there are."""
        with resource_errors():
            listing = await recall.list_conversations(await scope_of(ctx), agent)
        return listing.model_dump_json()

    @server.resource(
        "engram://agents/{agent}/conversations/{conversation}{?page}", name="transcript", mime_type="application/json"
    )
    async def transcript(agent: str, conversation: str, ctx: Context, page: int = 1) -> str:
        """A conversation's messages in order, 50 per page (?page=2 for the next ones)."""
        with resource_errors():
            found = await recall.read_transcript(await scope_of(ctx), agent, conversation, page)
        return found.model_dump_json()

    @server.resource("engram://agents/{agent}/summary{?conversation}", name="summary", mime_type="application/json")
    async def conversation_summary(agent: str, ctx: Context, conversation: str | None = None) -> str:
        """The built-in agent's current summary of a conversation ('default' unless ?conversation=NAME), with
        the span of messages it covers."""
        with resource_errors():
            found = await turn.current_summary(await scope_of(ctx), agent, conversation)
        return found.model_dump_json()

    @server.resource("engram://agents/{agent}/blocks/{label}", name="block", mime_type="text/plain")
    async def block_value(agent: str, label: str, ctx: Context) -> str:
        """The current text of one block."""
        with resource_errors():
            block = await core.read_block(await scope_of(ctx), agent, label)
        return block.value


def _register_prompts(server: MCPServer[Runtime], settings: Settings) -> None:
    @server.prompt(name="memory", title="Load Engram memory")
    async def memory(
        ctx: Context,
        agent: Annotated[
            str | None, Field(description="Agent whose memory to load; the default agent if omitted.")
        ] = None,
    ) -> str:
        """Inject the agent's core memory and the memory-use instructions into this conversation."""
        with resource_errors():
            rendered = await core.core_memory_view(await scope_of(ctx), agent)
        return f"{INSTRUCTIONS}\nThis is your core memory now:\n\n{rendered}"

    @server.prompt(name="memory_context", title="Recall what Engram remembers about this")
    async def recall_for(
        ctx: Context,
        message: Annotated[
            str | None, Field(description="What the conversation is about; empty: core memory and recent activity.")
        ] = None,
        agent: Annotated[
            str | None, Field(description="Agent whose memory to use; the default agent if omitted.")
        ] = None,
    ) -> str:
        """Core memory and what memory holds about the message (best first, dated), within the server's budget."""
        with resource_errors():
            scope = await scope_of(ctx)
            found = await context.memory_context(scope, message or "", agent, budget=settings.context_budget())
        return found.text or "Engram's memory holds nothing for this agent yet."
