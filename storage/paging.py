"""Keyset pages: `limit` rows after or before a known row, in either order, for lists that a client walks
with `after=<last id>` (Letta's client does) without rows shifting under it as others are added."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from engram.storage.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import InstrumentedAttribute

Row = TypeVar("Row")


@dataclass(frozen=True)
class Cursor:
    """Which page: up to `limit` rows after the row `after` and before the row `before`, in ascending order of
    the list's key, or descending with `descending`."""

    limit: int = 50
    after: uuid.UUID | None = None
    before: uuid.UUID | None = None
    descending: bool = False


async def keyset_page(
    session: AsyncSession,
    query: Select[Row],
    key: InstrumentedAttribute[Any],
    ident: InstrumentedAttribute[uuid.UUID],
    cursor: Cursor,
    *,
    what: str,
) -> list[Row]:
    """The page of `query`'s rows ordered by (`key`, `ident`). A cursor naming a row that `query` does not
    hold raises NotFoundError (`what` names the kind of row)."""
    from sqlalchemy import tuple_

    async def position(row_id: uuid.UUID, argument: str) -> tuple[Any, uuid.UUID]:
        found = (await session.execute(query.with_only_columns(key, ident).where(ident == row_id))).first()
        if found is None:
            raise NotFoundError(f"{argument}: there is no {what} with id {row_id} in this list")
        return found[0], found[1]

    pair = tuple_(key, ident)
    statement = query
    if cursor.after is not None:
        start = tuple_(*await position(cursor.after, "after"))
        statement = statement.where(pair < start if cursor.descending else pair > start)
    if cursor.before is not None:
        end = tuple_(*await position(cursor.before, "before"))
        statement = statement.where(pair > end if cursor.descending else pair < end)
    # Only `before`: the rows nearest to it, read backwards and turned round.
    backwards = cursor.before is not None and cursor.after is None
    ascending = cursor.descending == backwards
    ordered = statement.order_by(*((key.asc(), ident.asc()) if ascending else (key.desc(), ident.desc())))
    rows = list((await session.execute(ordered.limit(cursor.limit))).scalars())
    return rows[::-1] if backwards else rows
