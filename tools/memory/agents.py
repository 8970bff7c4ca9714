"""Agents: create, list, inspect and delete; and the default agent made on first use."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from engram.storage.errors import ConflictError, InvalidInputError, NotFoundError
from engram.tools.repositories import agent_repo, block_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage.schema import Agent, Block
from engram.tools.arguments import check_agent_name, check_label, check_text

MAX_PAGE_SIZE = 100
MAX_BLOCKS_PER_AGENT = 20


class BlockSpec(BaseModel):
    """A block to create with a new agent."""

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
    name: str
    description: str
    created_at: datetime
    blocks: list[BlockSummary]


class AgentListItem(BaseModel):
    name: str
    description: str
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
) -> Agent:
    agent = await agent_repo.insert_if_absent(session, scope.owner_id, name, description=description)
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


async def agent_info(session: AsyncSession, scope: Scope, agent: Agent) -> AgentInfo:
    blocks = await block_repo.of_agent(session, scope.owner_id, agent.id)
    return AgentInfo(
        name=agent.name,
        description=agent.description,
        created_at=agent.created_at,
        blocks=[block_summary(block) for block in blocks],
    )


async def agent_create(
    scope: Scope,
    name: Annotated[str, Field(description="Unique name of the new agent (letters, digits, '_', '.', '-').")],
    description: Annotated[str, Field(description="What the agent is for.", max_length=2000)] = "",
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
) -> AgentInfo:
    """Create an agent with its own core memory: a 'persona' and a 'human' block plus any blocks you list.

    Use one agent per project or purpose so memories do not mix.
    """
    check_agent_name(name)
    for argument, text in (("persona", persona), ("human", human)):
        if text is not None:
            check_text(argument, text, max_chars=scope.max_input_chars, allow_empty=True)
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
        )
        return await agent_info(session, scope, agent)


async def agent_list(
    scope: Scope,
    page: Annotated[int, Field(ge=1, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="Agents per page.")] = 50,
) -> AgentPage:
    """List your agents by name, a page at a time."""
    async with scope.sessions.begin() as session:
        rows, total = await agent_repo.list_page(
            session, scope.owner_id, offset=(page - 1) * page_size, limit=page_size
        )
    return AgentPage(
        agents=[AgentListItem(name=a.name, description=a.description, created_at=a.created_at) for a in rows],
        total=total,
        page=page,
        page_size=page_size,
        next_page=page + 1 if page * page_size < total else None,
    )


async def agent_show(scope: Scope, name: str | None) -> AgentInfo:
    async with scope.sessions.begin() as session:
        agent = await resolve_agent(session, scope, name)
        return await agent_info(session, scope, agent)


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
