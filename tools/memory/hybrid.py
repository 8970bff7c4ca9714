"""What archival and recall search share: the bounds of a query, how deep each leg looks, and running the
vector and keyword legs (storage.search) for a caller's scope."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Literal

from engram.storage.errors import InvalidInputError
from engram.tools.repositories import search
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage.search import KeywordMatch, Scored, SqlFilter, Table

MAX_QUERY_CHARS = 2000
CANDIDATES = 100  # depth of each search leg: pages reach down to the 100 best matches

SearchMode = Literal["hybrid", "vector", "keyword"]


def check_depth(page: int, size: int, *, size_name: str, narrow: str) -> None:
    """Refuse a page that starts past the CANDIDATES best matches (no leg looks deeper)."""
    if (page - 1) * size >= CANDIDATES:
        raise InvalidInputError(
            f"page {page} with {size_name} {size} starts past the {CANDIDATES} best matches; "
            f"narrow {narrow} instead of paging further"
        )


async def embed_query(scope: Scope, query: str, mode: SearchMode) -> Any | None:
    """The query's vector, or None when only the keyword leg runs."""
    return (await scope.embedder.embed([query]))[0] if mode != "keyword" else None


async def run_legs(
    session: AsyncSession,
    scope: Scope,
    table: Table,
    agent_id: uuid.UUID,
    *,
    query: str,
    vector: Any | None,
    keywords: KeywordMatch | None,
    where: SqlFilter,
) -> tuple[Scored | None, Scored | None]:
    """Both legs over the agent's rows of `table`, each CANDIDATES deep (None for a leg not asked for)."""
    return await search.run_legs(
        session,
        table,
        scope.owner_id,
        agent_id,
        query=query,
        vector=vector,
        keywords=keywords,
        model=scope.embedder.model,
        where=where,
        limit=CANDIDATES,
        exact_scan_limit=scope.exact_scan_limit,
    )
