"""Principals: who owns data. `local` is the stdio and CLI user's; no bearer token may map to it."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage.errors import InvalidInputError
from engram.storage.schema import Principal

LOCAL_PRINCIPAL = "local"


def check_token_principal(name: str) -> str:
    """Refuse LOCAL_PRINCIPAL as a token's principal: the token would open the local user's memory over HTTP."""
    if name.strip() == LOCAL_PRINCIPAL:
        raise InvalidInputError(
            f"principal '{LOCAL_PRINCIPAL}' is reserved for the local user (stdio, the CLI, and HTTP without "
            "tokens): a token for it would open that user's memory over HTTP; give the token another principal, "
            "such as the name of the person or service that uses it"
        )
    return name


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
