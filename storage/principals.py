"""Principals: who owns data."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage.schema import Principal

LOCAL_PRINCIPAL = "local"


async def ensure_principal(session: AsyncSession, name: str) -> uuid.UUID:
    """The id of the principal called `name`, created if it does not exist yet (safe under concurrency)."""
    created: uuid.UUID | None = await session.scalar(
        insert(Principal)
        .values(id=uuid.uuid4(), name=name)
        .on_conflict_do_nothing(index_elements=[Principal.name])
        .returning(Principal.id)
    )
    if created is not None:
        return created
    return (await session.scalars(select(Principal.id).where(Principal.name == name))).one()
