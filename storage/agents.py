"""Agents. Every query takes the owner, so one principal never sees another's agents."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage.schema import Agent


async def get_by_name(session: AsyncSession, owner_id: uuid.UUID, name: str) -> Agent | None:
    return await session.scalar(select(Agent).where(Agent.owner_id == owner_id, Agent.name == name))


async def insert_if_absent(
    session: AsyncSession, owner_id: uuid.UUID, name: str, *, description: str = "", system: str = ""
) -> Agent | None:
    """Insert the agent and return it, or return None when the owner already has an agent of that name.

    A concurrent insert of the same name waits for the other transaction, then yields None.
    """
    agent_id = await session.scalar(
        insert(Agent)
        .values(id=uuid.uuid4(), owner_id=owner_id, name=name, description=description, system=system)
        .on_conflict_do_nothing(constraint="agents_owner_name_key")
        .returning(Agent.id)
    )
    if agent_id is None:
        return None
    return (await session.scalars(select(Agent).where(Agent.owner_id == owner_id, Agent.id == agent_id))).one()


async def list_page(session: AsyncSession, owner_id: uuid.UUID, *, offset: int, limit: int) -> tuple[list[Agent], int]:
    total = await session.scalar(select(func.count()).select_from(Agent).where(Agent.owner_id == owner_id))
    rows = await session.scalars(
        select(Agent).where(Agent.owner_id == owner_id).order_by(Agent.name).offset(offset).limit(limit)
    )
    return list(rows), int(total or 0)


async def delete_agent(session: AsyncSession, owner_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    await session.execute(delete(Agent).where(Agent.owner_id == owner_id, Agent.id == agent_id))
