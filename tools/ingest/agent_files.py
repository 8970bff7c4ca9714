"""Letta agent files (.af): agents written out as Letta writes them, and Letta's files stored as Engram agents.

A file carries agents' settings, their core-memory blocks and their message histories (archival passages are not
part of the format). A history is the agent's 'default' conversation: the one the built-in agent and the REST
messages routes use. `letta_parse` reads the files (Letta's current format, the flat 0.6.x format, and files whose
JSON is a string holding the JSON); this module writes them and stores what it read, in one transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from engram.storage.errors import ConflictError, InvalidInputError, NotFoundError
from engram.tools.arguments import DEFAULT_CONVERSATION, check_agent_name
from engram.tools.ingest.letta_parse import MAX_AGENT_FILE_BYTES, FileAgent, parse_agent_file
from engram.tools.ingest.transfer import AgentsImported
from engram.tools.loop.prompt import DEFAULT_SYSTEM_PROMPT
from engram.tools.repositories import agent_repo, block_repo, message_repo, passage_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage.schema import Agent, Block, Message

__all__ = ["MAX_AGENT_FILE_BYTES", "export_agent_file", "export_agent_files", "import_agent_file", "import_letta_file"]

log = logging.getLogger(__name__)

COPY_SUFFIX = "__copy"
DEFAULT_CONTEXT_WINDOW = 8192  # what the file says when the agent has no context window of its own
EMBEDDING_DIM = 384
# LLMConfig.model_endpoint_type in letta-client 1.12.1: a litellm prefix outside these is written as "openai".
LETTA_ENDPOINT_TYPES = frozenset(
    {
        "openai", "anthropic", "google_ai", "google_vertex", "azure", "groq", "ollama", "webui", "webui-legacy",
        "lmstudio", "lmstudio-legacy", "lmstudio-chatcompletions", "llamacpp", "koboldcpp", "vllm",
        "hugging-face", "minimax", "moonshot", "moonshot_coding", "mistral", "together", "bedrock", "deepseek",
        "xai", "zai", "zai_coding", "baseten", "fireworks", "openrouter", "chatgpt_oauth",
    }
)  # fmt: skip


# Export


async def export_agent_file(scope: Scope, agent: str) -> dict[str, Any]:
    """The agent as a Letta agent file (current format): settings, blocks and its 'default' conversation.

    Message 0 is the system prompt, as in Letta's own files (Letta's agent keeps its system message first).
    """
    exported, _left_out = await export_agent_files(scope, [agent])
    return exported


async def export_agent_files(scope: Scope, agents: list[str]) -> tuple[dict[str, Any], int]:
    """The agents as one Letta agent file, and how many archival passages they hold (which the format leaves
    out). Blocks the agents share are written once; message ids run on across agents."""
    names = list(dict.fromkeys(check_agent_name(agent) for agent in agents))
    if not names:
        raise InvalidInputError("name at least one agent to export")
    file_agents: list[dict[str, Any]] = []
    file_blocks: dict[Any, dict[str, Any]] = {}
    left_out = 0
    next_message = 0
    for number, name in enumerate(names):
        async with scope.sessions.begin() as session:
            row = await agent_repo.get_by_name(session, scope.owner_id, name)
            if row is None:
                raise NotFoundError(f"agent '{name}' does not exist; call agent_list to see your agents")
            blocks = await block_repo.of_agent(session, scope.owner_id, row.id)
            thread = await message_repo.get_conversation(session, scope.owner_id, row.id, DEFAULT_CONVERSATION)
            rows = await message_repo.transcript(session, thread, first=1, limit=thread.message_count) if thread else []
            context_start = thread.context_start if thread else 1
            left_out += await passage_repo.count(session, scope.owner_id, row.id)
        for block in blocks:
            if block.id not in file_blocks:
                file_blocks[block.id] = _file_block(f"block-{len(file_blocks)}", block)
        system = row.system or DEFAULT_SYSTEM_PROMPT
        first = next_message
        ids = [f"message-{first + place}" for place in range(len(rows) + 1)]
        next_message += len(ids)
        messages = [_system_message(ids[0], system, row.created_at)] + [
            _file_message(message_id, message) for message_id, message in zip(ids[1:], rows, strict=True)
        ]
        in_context = [ids[0]] + [
            message_id for message_id, message in zip(ids[1:], rows, strict=True) if message.ordinal >= context_start
        ]
        file_agents.append(
            {
                "id": f"agent-{number}",
                "name": row.name,
                "system": system,
                "description": row.description,
                "agent_type": "memgpt_agent",
                "llm_config": _llm_config(row.llm or {}),
                "embedding_config": {
                    "embedding_model": scope.embedder.model,
                    "embedding_endpoint_type": "hugging-face",
                    "embedding_dim": EMBEDDING_DIM,
                },
                "tags": list(row.tags),
                "block_ids": [file_blocks[block.id]["id"] for block in blocks],
                "tool_ids": [],
                "messages": messages,
                "in_context_message_ids": in_context,
            }
        )
    exported = {
        "agents": file_agents,
        "blocks": list(file_blocks.values()),
        "tools": [],
        "groups": [],
        "files": [],
        "sources": [],
        "mcp_servers": [],
        "metadata": {"exported_by": "engram", "engram_version": _engram_version()},
        "created_at": datetime.now(UTC).isoformat(),
    }
    return exported, left_out


def _llm_config(llm: dict[str, Any]) -> dict[str, Any] | None:
    """Letta's LLMConfig requires a model: an agent without one has none (Letta's loader accepts null)."""
    model = llm.get("model")
    if not model:
        return None
    prefix = str(model).split("/", 1)[0] if "/" in str(model) else ""
    return {
        "model": str(model),
        "model_endpoint_type": prefix if prefix in LETTA_ENDPOINT_TYPES else "openai",
        "context_window": int(llm.get("context_window") or DEFAULT_CONTEXT_WINDOW),
    }


def _file_block(block_id: str, block: Block) -> dict[str, Any]:
    return {
        "id": block_id,
        "label": block.label,
        "value": block.value,
        "limit": block.char_limit,
        "description": block.description,
        "read_only": block.read_only,
        "metadata": {},
    }


def _system_message(message_id: str, system: str, created_at: datetime) -> dict[str, Any]:
    return {
        "id": message_id,
        "role": "system",
        "content": [{"type": "text", "text": system}],
        "tool_calls": None,
        "tool_call_id": None,
        "name": None,
        "tool_returns": None,
        "created_at": created_at.isoformat(),
    }


def _file_message(message_id: str, row: Message) -> dict[str, Any]:
    content: dict[str, Any] = row.content or {}
    return {
        "id": message_id,
        "role": row.role,
        "content": [{"type": "text", "text": content.get("text", row.text)}],
        "tool_calls": content.get("tool_calls") or None,
        "tool_call_id": content.get("tool_call_id"),
        "name": content.get("name"),
        "tool_returns": _tool_returns(row.role, content),
        "created_at": row.created_at.isoformat(),
    }


def _tool_returns(role: str, content: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Whether a tool call succeeded ('ok', as the built-in agent stores it), in Letta's words."""
    if role != "tool" or not isinstance(content.get("ok"), bool):
        return None
    return [{"tool_call_id": content.get("tool_call_id"), "status": "success" if content["ok"] else "error"}]


def _engram_version() -> str:
    try:
        return version("engram")
    except PackageNotFoundError:
        return "0.0.0"


# Import


async def import_agent_file(
    scope: Scope,
    data: bytes | str,
    *,
    name: str | None = None,
    append_copy_suffix: bool = False,
    strip_messages: bool = False,
) -> list[str]:
    """Create an Engram agent for each agent in a Letta agent file; returns their names (see `import_letta_file`)."""
    report = await import_letta_file(
        scope, data, name=name, append_copy_suffix=append_copy_suffix, strip_messages=strip_messages
    )
    return report.agents


async def import_letta_file(
    scope: Scope,
    data: bytes | str,
    *,
    name: str | None = None,
    append_copy_suffix: bool = False,
    strip_messages: bool = False,
    replace: bool = False,
    where: str | None = None,
) -> AgentsImported:
    """Create an Engram agent for each agent in a Letta agent file, and say what was left out (Letta's tools).

    The whole file is read and checked first, then stored in one transaction: nothing is kept if any agent
    fails. `name` renames the file's only agent; `append_copy_suffix` adds '__copy' to each name;
    `strip_messages` leaves the history out; `replace` deletes an existing agent of the same name first (else
    a taken name is refused).
    """
    try:
        agents = parse_agent_file(data, scope, keep_messages=not strip_messages)
    except InvalidInputError as exc:
        if where is None:
            raise
        raise InvalidInputError(f"{where}: {exc}") from None
    if name is not None and len(agents) != 1:
        raise InvalidInputError(
            f"the agent file holds {len(agents)} agents and 'name' renames one agent only; import it without "
            "'name' (append_copy_suffix renames every agent)"
        )
    names = [_name_of(agent, name, append_copy_suffix) for agent in agents]
    repeated = sorted({chosen for chosen in names if names.count(chosen) > 1})
    if repeated:
        raise InvalidInputError(f"the agent file holds several agents named '{repeated[0]}'; agent names must differ")
    if where is not None and not replace:  # the command line's words for a taken name
        async with scope.sessions.begin() as session:
            for chosen in names:
                if await agent_repo.get_by_name(session, scope.owner_id, chosen) is not None:
                    raise ConflictError(
                        f"agent '{chosen}' already exists; import it under another name (--as NAME) or replace the "
                        "existing agent (--replace)"
                    )
    report = AgentsImported(format="letta", agents=names)
    made: dict[str, Block] = {}
    async with scope.sessions.begin() as session:
        for agent, chosen in zip(agents, names, strict=True):
            if replace:
                await _delete_existing(session, scope, chosen)
            row = await _create_agent(session, scope, agent, chosen, append_copy_suffix, made)
            stored = await _store_messages(session, scope, row, agent)
            report.messages += stored
            report.conversations += bool(stored)
    report.blocks = len(made)
    tools = sorted({tool for agent in agents for tool in agent.tools})
    if tools:
        report.skipped.append(
            f"{len(tools)} Letta tools ({', '.join(tools)}): Letta tools are code that Engram does not run; its "
            "agents use Engram's own memory tools"
        )
    if report.messages:
        scope.recorded()
    return report


async def _delete_existing(session: AsyncSession, scope: Scope, name: str) -> None:
    """Delete the agent of this name (and the blocks only it uses), if there is one."""
    existing = await agent_repo.get_by_name(session, scope.owner_id, name)
    if existing is not None:
        own = [block.id for block in await block_repo.of_agent(session, scope.owner_id, existing.id)]
        await agent_repo.delete_agent(session, scope.owner_id, existing.id)
        await block_repo.delete_unlinked(session, scope.owner_id, own)


def _name_of(agent: FileAgent, name: str | None, append_copy_suffix: bool) -> str:
    chosen = name if name is not None else agent.name
    if not chosen:
        raise InvalidInputError(f"{agent.where} has no name; pass 'name' to give it one")
    chosen += COPY_SUFFIX if append_copy_suffix else ""
    try:
        return check_agent_name(chosen)
    except InvalidInputError as exc:
        if name is not None:
            raise
        raise InvalidInputError(f"{exc}; pass 'name' to import the agent under another name") from None


async def _create_agent(
    session: AsyncSession, scope: Scope, agent: FileAgent, name: str, append_copy_suffix: bool, made: dict[str, Block]
) -> Agent:
    """The agent with its blocks; a block an earlier agent of the file made is attached, so they share it."""
    row = await agent_repo.insert_if_absent(
        session,
        scope.owner_id,
        name,
        description=agent.description,
        system=agent.system,
        llm=agent.llm,
        tags=agent.tags,
    )
    if row is None:
        copy = "" if append_copy_suffix else f", or append_copy_suffix to import it as '{name}{COPY_SUFFIX}'"
        raise ConflictError(f"agent '{name}' already exists; pass another name{copy}")
    for position, (key, block) in enumerate(agent.blocks):
        if key in made:
            await block_repo.link(session, row.id, made[key])
            continue
        made[key] = await block_repo.create_linked(
            session,
            scope.owner_id,
            row.id,
            label=block.label,
            value=block.value,
            char_limit=block.limit or len(block.value),
            description=block.description,
            read_only=block.read_only,
            position=position,
        )
    return row


async def _store_messages(session: AsyncSession, scope: Scope, row: Agent, agent: FileAgent) -> int:
    """Store the agent's messages in its 'default' conversation, the in-context ones from its context start."""
    if not agent.messages:
        return 0
    thread = await message_repo.ensure_conversation(
        session, scope.owner_id, row.id, DEFAULT_CONVERSATION, source="letta"
    )
    stored = await message_repo.append(session, thread, [message.draft for message in agent.messages])
    ordinals = [message.ordinal for message in stored]
    start = ordinals[0]
    if agent.in_context is not None:
        in_context = [o for m, o in zip(agent.messages, ordinals, strict=True) if m.index in agent.in_context]
        start = in_context[0] if in_context else ordinals[-1] + 1
    thread.context_start = start
    await session.flush()
    return len(stored)
