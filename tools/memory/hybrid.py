"""What archival and recall search share: the bounds of a query, how deep each leg looks, and running the
vector and keyword legs (storage.search) for a caller's scope."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio

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


class QueryVector:
    """A query's vector, computed by the embedder (in a worker thread) while the caller reads the database:
    resolving the agent, the keyword leg and the size probe need no vector. `get` waits for it and raises
    what embedding raised. Made by `embedding_of`."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._vector: Any = None
        self._error: Exception | None = None

    async def compute(self, scope: Scope, query: str) -> None:
        try:
            self._vector = (await scope.embedder.embed([query]))[0]
        except Exception as exc:  # handed to whoever awaits the vector, so that its error is the call's
            self._error = exc
        finally:
            self._done.set()

    async def get(self) -> Any:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._vector


@asynccontextmanager
async def embedding_of(scope: Scope, query: str, mode: SearchMode) -> AsyncIterator[QueryVector | None]:
    """The query's vector being computed while the body runs (None when only the keyword leg runs). A body
    that fails first leaves the computation to finish in its thread, unused."""
    if mode == "keyword":
        yield None
        return
    vector = QueryVector()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(vector.compute, scope, query)
            yield vector
    except BaseExceptionGroup as grouped:
        # `compute` keeps its error for `get`: the body's error is the only one, and is the call's own.
        if len(grouped.exceptions) == 1:
            raise grouped.exceptions[0] from None
        raise


async def run_legs(
    session: AsyncSession,
    scope: Scope,
    table: Table,
    agent_id: uuid.UUID,
    *,
    query: str,
    vector: QueryVector | None,
    keywords: KeywordMatch | None,
    where: SqlFilter,
) -> tuple[Scored | None, Scored | None]:
    """Both legs over the agent's rows of `table`, each CANDIDATES deep (None for a leg not asked for: no
    `vector` from `embedding_of`, no `keywords` mode)."""
    return await search.run_legs(
        session,
        table,
        scope.owner_id,
        agent_id,
        query=query,
        vector=vector.get if vector is not None else None,
        keywords=keywords,
        model=scope.embedder.model,
        where=where,
        limit=CANDIDATES,
        exact_scan_limit=scope.exact_scan_limit,
    )
