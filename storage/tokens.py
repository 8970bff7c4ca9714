"""Bearer tokens for the HTTP transports. A token is shown once, at creation; only its SHA-256 is stored."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engram.storage import sha256_hex
from engram.storage.errors import ConflictError, InvalidInputError
from engram.storage.principals import LOCAL_PRINCIPAL, check_token_principal, ensure_principal
from engram.storage.schema import Principal, Token

log = logging.getLogger(__name__)

PREFIX = "engram_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


@dataclass(frozen=True)
class TokenInfo:
    name: str
    principal: str
    created_at: datetime
    revoked_at: datetime | None


async def create(session: AsyncSession, name: str, principal: str) -> str:
    """A new token called `name` for `principal` (created if new). Returns the token itself, once."""
    for kind, value in (("token name", name), ("principal", principal)):
        if not NAME.fullmatch(value):
            raise InvalidInputError(
                f"{kind} {value[:120]!r} is not valid: use 1-100 letters, digits, '_', '.', '@' or '-'"
            )
    check_token_principal(principal)
    token = PREFIX + secrets.token_urlsafe(32)
    principal_id = await ensure_principal(session, principal)
    created = await session.scalar(
        insert(Token)
        .values(name=name, principal_id=principal_id, token_hash=sha256_hex(token))
        .on_conflict_do_nothing(index_elements=[Token.name])
        .returning(Token.id)
    )
    if created is None:
        raise ConflictError(f"a token named '{name}' already exists; revoke it first or pick another name")
    return token


async def revoke(session: AsyncSession, name: str) -> bool:
    """Revoke the token called `name`; False if there is no such active token."""
    result = await session.execute(
        update(Token)
        .where(Token.name == name, Token.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(Token.id)
    )
    return result.first() is not None


async def listing(session: AsyncSession) -> list[TokenInfo]:
    rows = await session.execute(
        select(Token.name, Principal.name.label("principal"), Token.created_at, Token.revoked_at)
        .join(Principal, Principal.id == Token.principal_id)
        .order_by(Token.created_at)
    )
    return [TokenInfo(row.name, row.principal, row.created_at, row.revoked_at) for row in rows]


async def principal_of(session: AsyncSession, token: str) -> str | None:
    """The principal an active token maps to, or None (unknown or revoked).

    A token stored for LOCAL_PRINCIPAL (possible before that name was reserved) is refused, with a warning.
    """
    found = (
        await session.execute(
            select(Principal.name, Token.name.label("token"))
            .join(Token, Token.principal_id == Principal.id)
            .where(Token.token_hash == sha256_hex(token), Token.revoked_at.is_(None))
        )
    ).first()
    if found is None:
        return None
    if found.name == LOCAL_PRINCIPAL:
        log.warning(
            "refused token '%s': it maps to the reserved principal '%s', the local user's memory; revoke it "
            "('engram tokens revoke %s') and create one for another principal",
            found.token,
            LOCAL_PRINCIPAL,
            found.token,
        )
        return None
    principal: str = found.name
    return principal


async def any_active(session: AsyncSession) -> bool:
    return (await session.scalar(select(Token.id).where(Token.revoked_at.is_(None)).limit(1))) is not None
