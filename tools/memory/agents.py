"""Agents: create, list, inspect, change and delete; and the default agent made on first use.

Besides its memory, an agent carries the settings of the built-in agent that `send_message` runs over it
(Letta's agent state): its system prompt (`agents.system`; empty for Engram's default prompt), its model and
context window (`agents.llm`), and tags to group agents by.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from engram.storage.errors import ConflictError, InvalidInputError, NotFoundError
from engram.tools.arguments import (
    MAX_CONTEXT_WINDOW,
    MIN_CONTEXT_WINDOW,
    check_agent_name,
    check_context_window,
    check_label,
    check_model,
    check_page,
    check_tags,
    check_text,
)
from engram.tools.memory.render import cut
from engram.tools.repositories import agent_repo, block_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage.schema import Agent, Block

MAX_PAGE_SIZE = 100
MAX_BLOCKS_PER_AGENT = 20
MAX_DESCRIPTION_CHARS = 2000
SYSTEM_PREVIEW_CHARS = 1000  # of the system prompt in an agent's state (tool results and the resource)


class BlockSpec(BaseModel):
    """A block to create with a new agent."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="Block label, e.g. 'project' (letters, digits, '_', '.', '-').")
    value: str = Field(default="", description="Initial text of the block.")
    limit: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Character limit; the server's default if omitted."
    )
    description: str = Field(default="", max_length=2000, description="What the block is for, shown to the agent.")
    read_only: bool = Field(default=False, description="If true, no tool may edit the block.")


class BlockSummary(BaseModel):
    label: str
    chars_current: int
    chars_limit: int
    read_only: bool
    version: int
    description: str


class AgentInfo(BaseModel):
    id: str
    name: str
    description: str
    system: str | None = Field(
        description="The built-in agent's system prompt for this agent (shortened, ending in '…', when long); "
        "null: Engram's default memory-agent prompt."
    )
    model: str | None = Field(
        description="The built-in agent's litellm model for this agent; null: the server's llm_model, else the "
        "host's model through MCP sampling."
    )
    context_window: int | None = Field(
        description="Tokens the built-in agent's prompt may hold for this agent; null: the server's setting, "
        "else the model's own window."
    )
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    blocks: list[BlockSummary]


class AgentListItem(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    created_at: datetime


class AgentPage(BaseModel):
    agents: list[AgentListItem]
    total: int
    page: int
    page_size: int
    next_page: int | None = Field(description="The page to ask for next, or null on the last page.")


class AgentDeleted(BaseModel):
    name: str
    blocks_deleted: int = Field(description="Blocks removed with it (blocks shared with other agents are kept).")


def block_summary(block: Block) -> BlockSummary:
    return BlockSummary(
        label=block.label,
        chars_current=len(block.value),
        chars_limit=block.char_limit,
        read_only=block.read_only,
        version=block.version,
        description=block.description,
    )


async def resolve_agent(session: AsyncSession, scope: Scope, name: str | None, *, create: bool = False) -> Agent:
    """The named agent, or the default agent (created with its persona and human blocks on first use).

    `create` makes a missing named agent the same way (for commands like `engram record --agent A`).
    """
    if name is None or name == scope.defaults.name:
        return await _default_agent(session, scope)
    check_agent_name(name)
    agent = await agent_repo.get_by_name(session, scope.owner_id, name)
    if agent is None and create:
        return await _create(
            session, scope, name, description="", blocks=[], persona=None, human=None, reuse_existing=True
        )
    if agent is None:
        raise NotFoundError(
            f"agent '{name}' does not exist; call agent_list to see your agents, or agent_create to make it"
        )
    return agent


async def resolve_agent_ref(
    session: AsyncSession, scope: Scope, name: str | None, *, create: bool = False
) -> agent_repo.AgentRef:
    """`resolve_agent` for callers that need only the agent's id and name (most tools): the lookup reads two
    columns instead of loading the whole agent; a missing agent goes to `resolve_agent`, which makes the
    default one (or, with `create`, the named one) or says it does not exist."""
    lookup = scope.defaults.name if name is None else name
    if lookup != scope.defaults.name:
        check_agent_name(lookup)
    found = await agent_repo.ref_by_name(session, scope.owner_id, lookup)
    if found is not None:
        return found
    agent = await resolve_agent(session, scope, name, create=create)
    return agent_repo.AgentRef(agent.id, agent.name)


async def _default_agent(session: AsyncSession, scope: Scope) -> Agent:
    name = scope.defaults.name
    agent = await agent_repo.get_by_name(session, scope.owner_id, name)
    if agent is not None:
        return agent
    return await _create(
        session, scope, name, description="Default agent", blocks=[], persona=None, human=None, reuse_existing=True
    )


async def _create(
    session: AsyncSession,
    scope: Scope,
    name: str,
    *,
    description: str,
    blocks: list[BlockSpec],
    persona: str | None,
    human: str | None,
    reuse_existing: bool,
    system: str = "",
    llm: dict[str, Any] | None = None,
    tags: list[str] | None = None,
) -> Agent:
    agent = await agent_repo.insert_if_absent(
        session, scope.owner_id, name, description=description, system=system, llm=llm, tags=tags
    )
    if agent is None:
        existing = await agent_repo.get_by_name(session, scope.owner_id, name)
        if reuse_existing and existing is not None:
            return existing
        raise ConflictError(f"agent '{name}' already exists; use it as it is, or pick another name")
    specs = [
        BlockSpec(label="persona", value=scope.defaults.persona if persona is None else persona),
        BlockSpec(label="human", value=scope.defaults.human if human is None else human),
    ]
    for spec in blocks:
        specs = [s for s in specs if s.label != spec.label] + [spec]
    for position, spec in enumerate(specs):
        limit = spec.limit or scope.defaults.block_char_limit
        if len(spec.value) > limit:
            raise InvalidInputError(
                f"block '{spec.label}' starts with {len(spec.value)} characters, over its limit of {limit}; "
                "shorten the value or raise the block's limit"
            )
        await block_repo.create_linked(
            session,
            scope.owner_id,
            agent.id,
            label=spec.label,
            value=spec.value,
            char_limit=limit,
            description=spec.description,
            read_only=spec.read_only,
            position=position,
        )
    return agent


async def agent_info(
    session: AsyncSession, scope: Scope, agent: Agent, *, system_chars: int | None = SYSTEM_PREVIEW_CHARS
) -> AgentInfo:
    """The agent's state; its system prompt shortened to `system_chars` (None: in full)."""
    blocks = await block_repo.of_agent(session, scope.owner_id, agent.id)
    llm = agent.llm or {}
    return AgentInfo(
        id=str(agent.id),
        name=agent.name,
        description=agent.description,
        system=(agent.system if system_chars is None else cut(agent.system, system_chars)) if agent.system else None,
        model=str(llm["model"]) if llm.get("model") else None,
        context_window=int(llm["context_window"]) if llm.get("context_window") else None,
        tags=list(agent.tags),
        created_at=agent.created_at,
        updated_at=agent.updated_at,
        blocks=[block_summary(block) for block in blocks],
    )


SystemArg = Annotated[
    str | None,
    Field(
        description="System prompt of the built-in agent (send_message) for this agent, in place of Engram's "
        "memory-agent prompt; its core memory and memory statistics follow it."
    ),
]
ModelArg = Annotated[
    str | None,
    Field(description="litellm model of the built-in agent for this agent, e.g. 'openai/gpt-4o-mini'."),
]
ContextWindowArg = Annotated[
    int | None,
    Field(
        description=f"Tokens the built-in agent's prompt may hold for this agent ({MIN_CONTEXT_WINDOW}-"
        f"{MAX_CONTEXT_WINDOW}); it summarizes older messages to stay inside."
    ),
]
TagsArg = Annotated[list[str] | None, Field(description="Short tags to group agents by, e.g. ['work', 'rust'].")]


async def agent_create(
    scope: Scope,
    name: Annotated[str, Field(description="Unique name of the new agent (letters, digits, '_', '.', '-').")],
    description: Annotated[str, Field(description="What the agent is for.", max_length=MAX_DESCRIPTION_CHARS)] = "",
    persona: Annotated[
        str | None, Field(description="Initial 'persona' block: who the agent is. Server default if omitted.")
    ] = None,
    human: Annotated[
        str | None, Field(description="Initial 'human' block: what is known about the user. Default if omitted.")
    ] = None,
    blocks: Annotated[
        list[BlockSpec] | None,
        Field(description="Further blocks to create (a 'persona' or 'human' entry here replaces the default)."),
    ] = None,
    system: SystemArg = None,
    model: ModelArg = None,
    context_window: ContextWindowArg = None,
    tags: TagsArg = None,
) -> AgentInfo:
    """Create an agent with its own core memory: a 'persona' and a 'human' block plus any blocks you list.

    Use one agent per project or purpose so memories do not mix. `system`, `model` and `context_window` set
    up the built-in agent that send_message runs over this memory; the server's defaults apply if omitted.
    """
    check_agent_name(name)
    check_text("description", description, max_chars=MAX_DESCRIPTION_CHARS, allow_empty=True)
    for argument, text in (("persona", persona), ("human", human), ("system", system)):
        if text is not None:
            check_text(argument, text, max_chars=scope.max_input_chars, allow_empty=True)
    llm = _llm_settings({}, model, context_window)
    clean_tags = check_tags(tags)
    specs = blocks or []
    if len(specs) > MAX_BLOCKS_PER_AGENT:
        raise InvalidInputError(f"{len(specs)} blocks given; an agent may start with at most {MAX_BLOCKS_PER_AGENT}")
    labels = [check_label(spec.label) for spec in specs]
    if len(set(labels)) != len(labels):
        raise InvalidInputError("two blocks share one label; give every block its own label")
    for spec in specs:
        check_text(f"blocks[{spec.label}].value", spec.value, max_chars=scope.max_input_chars, allow_empty=True)
    async with scope.sessions.begin() as session:
        agent = await _create(
            session,
            scope,
            name,
            description=description,
            blocks=specs,
            persona=persona,
            human=human,
            reuse_existing=False,
            system=system or "",
            llm=llm,
            tags=clean_tags,
        )
        return await agent_info(session, scope, agent)


async def agent_update(
    scope: Scope,
    name: Annotated[str, Field(description="Name of the agent to change.")],
    system: Annotated[
        str | None,
        Field(
            description="New system prompt of the built-in agent (send_message) for this agent; '' returns to "
            "Engram's memory-agent prompt."
        ),
    ] = None,
    description: Annotated[str | None, Field(description="New description.", max_length=MAX_DESCRIPTION_CHARS)] = None,
    model: Annotated[
        str | None,
        Field(
            description="New litellm model of the built-in agent, e.g. 'openai/gpt-4o-mini'; '' returns to the "
            "server's."
        ),
    ] = None,
    context_window: Annotated[
        int | None,
        Field(
            description=f"New context window in tokens ({MIN_CONTEXT_WINDOW}-{MAX_CONTEXT_WINDOW}); 0 returns to "
            "the server's setting or the model's own."
        ),
    ] = None,
    tags: Annotated[
        list[str] | None, Field(description="The agent's tags, replacing the ones it has; [] removes them all.")
    ] = None,
    new_name: Annotated[
        str | None, Field(description="A new name for the agent; its memory, conversations and settings stay.")
    ] = None,
) -> AgentInfo:
    """Change an agent's settings: only the arguments you pass change. Returns the agent's state.

    Renaming the default agent is allowed: the next call that names no agent creates a new default agent.
    """
    check_agent_name(name)
    if new_name is not None:
        check_agent_name(new_name)
    if description is not None:
        check_text("description", description, max_chars=MAX_DESCRIPTION_CHARS, allow_empty=True)
    if system is not None:
        check_text("system", system, max_chars=scope.max_input_chars, allow_empty=True)
    clean_tags = check_tags(tags) if tags is not None else None
    _llm_settings({}, model, context_window)  # checks the arguments before the transaction
    async with scope.sessions.begin() as session:
        agent = await agent_repo.lock(session, scope.owner_id, (await resolve_agent(session, scope, name)).id)
        llm = _llm_settings(agent.llm or {}, model, context_window)
        updated = await agent_repo.update_agent(
            session,
            scope.owner_id,
            agent.id,
            name=new_name if new_name != agent.name else None,
            description=description,
            system=system,
            llm=llm if llm != (agent.llm or {}) else None,
            tags=clean_tags,
        )
        if updated is None:
            raise ConflictError(
                f"agent '{new_name}' already exists, so agent '{agent.name}' cannot take its name; pick another name"
            )
        return await agent_info(session, scope, updated)


def _llm_settings(current: dict[str, Any], model: str | None, context_window: int | None) -> dict[str, Any]:
    """The agent's llm settings with `model` and `context_window` applied ('' and 0 remove them; None keeps)."""
    llm = dict(current)
    if model is not None:
        if model:
            llm["model"] = check_model(model)
        else:
            llm.pop("model", None)
    if context_window is not None:
        if check_context_window(context_window):
            llm["context_window"] = context_window
        else:
            llm.pop("context_window", None)
    return llm


async def agent_list(
    scope: Scope,
    page: Annotated[int, Field(ge=1, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="Agents per page.")] = 50,
) -> AgentPage:
    """List your agents by name, a page at a time."""
    async with scope.sessions.begin() as session:
        rows, total = await agent_repo.list_page(
            session, scope.owner_id, offset=(check_page(page) - 1) * page_size, limit=page_size
        )
    return AgentPage(
        agents=[
            AgentListItem(
                id=str(a.id), name=a.name, description=a.description, tags=list(a.tags), created_at=a.created_at
            )
            for a in rows
        ],
        total=total,
        page=page,
        page_size=page_size,
        next_page=page + 1 if page * page_size < total else None,
    )


async def agent_show(scope: Scope, name: str | None, *, system_chars: int | None = SYSTEM_PREVIEW_CHARS) -> AgentInfo:
    """The agent's state; its system prompt shortened to `system_chars` (None: in full)."""
    async with scope.sessions.begin() as session:
        agent = await resolve_agent(session, scope, name)
        return await agent_info(session, scope, agent, system_chars=system_chars)


async def agent_delete(
    scope: Scope,
    name: Annotated[str, Field(description="Name of the agent to delete, with all of its own memory.")],
) -> AgentDeleted:
    """Delete an agent and the blocks only it uses. This cannot be undone."""
    check_agent_name(name)
    async with scope.sessions.begin() as session:
        agent = await agent_repo.get_by_name(session, scope.owner_id, name)
        if agent is None:
            raise NotFoundError(f"agent '{name}' does not exist; call agent_list to see your agents")
        block_ids = [block.id for block in await block_repo.of_agent(session, scope.owner_id, agent.id)]
        await agent_repo.delete_agent(session, scope.owner_id, agent.id)
        removed = await block_repo.delete_unlinked(session, scope.owner_id, block_ids)
    return AgentDeleted(name=name, blocks_deleted=removed)
