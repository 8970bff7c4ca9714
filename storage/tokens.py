"""Bearer tokens for the HTTP transports. A token is shown once, at creation; only its SHA-256 is stored.

`TokenCache` spares an authenticated request its database round trip; revoking a token notifies every
server (PostgreSQL's LISTEN/NOTIFY on REVOKED_CHANNEL), so a revocation still takes effect on the next
request.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import anyio
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engram.storage import sha256_hex
from engram.storage.errors import ConflictError, InvalidInputError
from engram.storage.principals import LOCAL_PRINCIPAL, check_token_principal, ensure_principal
from engram.storage.schema import Principal, Token

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

PREFIX = "engram_"
REVOKED_CHANNEL = "engram_tokens_revoked"  # `revoke` notifies it; every TokenCache listens
CACHE_SECONDS = 10.0  # a cached token is checked in the database again after this long (edits made in SQL)
CACHE_ENTRIES = 10_000
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
    """Revoke the token called `name`; False if there is no such active token.

    Servers that cache tokens hear of it when the transaction commits (a NOTIFY is sent only then)."""
    result = await session.execute(
        update(Token)
        .where(Token.name == name, Token.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(Token.id)
    )
    if result.first() is None:
        return False
    await session.execute(select(func.pg_notify(REVOKED_CHANNEL, "")))
    return True


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


class TokenCache:
    """The principals of recently seen tokens, so that an authenticated request costs no database round trip.

    Correctness rests on hearing every revocation: `listen` keeps a connection LISTENing on
    REVOKED_CHANNEL, and every lookup first reads what that connection has already received (a
    non-blocking read of its socket, no round trip), so a request that arrives after `revoke` committed
    finds the cache emptied and asks the database. While that connection is down (not yet open, lost,
    or refused), nothing is cached and every request asks the database, as without a cache. An entry is
    also asked again after `max_age` seconds, which bounds a change made by hand in SQL. Only token
    hashes are kept, never tokens.
    """

    def __init__(self, *, max_age: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._clock = clock
        self._known: dict[str, tuple[str, float]] = {}  # token hash -> (principal, when it was checked)
        self._connection: psycopg.AsyncConnection[object] | None = None
        # Counts revocations heard and connection changes: a lookup that one happened during is not cached.
        self._revocations = 0
        self._listening = anyio.Event()

    @property
    def listening(self) -> bool:
        return self._connection is not None

    async def wait_listening(self) -> None:
        """Until `listen` is connected (tests use it; requests never wait for it)."""
        await self._listening.wait()

    async def principal_of(self, sessions: async_sessionmaker[AsyncSession], token: str) -> str | None:
        """As `principal_of`, from the cache when the token was seen active since the last revocation."""
        self._read_notices()
        digest = sha256_hex(token)
        if self._connection is not None:
            known = self._known.get(digest)
            if known is not None and self._clock() - known[1] < self._max_age:
                return known[0]
        revocations = self._revocations
        async with sessions.begin() as session:
            principal = await principal_of(session, token)
        if principal is not None and self._connection is not None and revocations == self._revocations:
            if len(self._known) >= CACHE_ENTRIES:
                self._known.clear()
            self._known[digest] = (principal, self._clock())
        return principal

    async def listen(self, engine: AsyncEngine) -> None:
        """Hold a connection that LISTENs for revocations, reconnecting (with back-off) when it is lost; runs
        until cancelled."""
        import psycopg

        delay = 0.5
        while True:
            try:
                arguments, options = engine.dialect.create_connect_args(engine.url)
                connection = await psycopg.AsyncConnection.connect(*arguments, **options, autocommit=True)
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "cannot listen for token revocations (%s); each request checks its token in the database",
                    type(exc).__name__,
                )
            else:
                try:
                    await connection.execute(f"LISTEN {REVOKED_CHANNEL}")
                    self._attach(connection)
                    delay = 0.5
                    while self._connection is connection:
                        await anyio.wait_readable(connection.pgconn.socket)
                        self._read_notices()
                    log.warning("lost the connection that listens for token revocations; reconnecting")
                except (psycopg.Error, OSError) as exc:
                    log.warning("listening for token revocations failed (%s); reconnecting", type(exc).__name__)
                finally:
                    self._detach()
                    with anyio.CancelScope(shield=True):
                        await connection.close()
            await anyio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _attach(self, connection: psycopg.AsyncConnection[object]) -> None:
        self._forget()  # what was cached before could have been revoked unheard
        self._connection = connection
        self._listening.set()

    def _detach(self) -> None:
        self._connection = None
        self._listening = anyio.Event()
        self._forget()

    def _forget(self) -> None:
        self._known.clear()
        self._revocations += 1

    def _read_notices(self) -> None:
        """Take in whatever the listening connection has received, without waiting: any notice empties the
        cache; a broken connection detaches it (so nothing is cached until `listen` reconnects)."""
        connection = self._connection
        if connection is None:
            return
        import psycopg
        from psycopg import pq

        pgconn = connection.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error:
            self._detach()
            return
        if pgconn.status != pq.ConnStatus.OK:
            self._detach()
            return
        heard = False
        while pgconn.notifies() is not None:
            heard = True
        if heard:
            self._forget()
