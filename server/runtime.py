"""The runtime: what Engram runs with, created once per process and handed to every door that needs it.

A `Runtime` holds the settings, the database (opened in the background), the embedder and, in a server,
the worker that embeds recorded messages. Creating one does no I/O; `Runtime.run()` opens the database in
a worker thread and yields at once, so `engram serve` answers `initialize` while the embedded PostgreSQL
starts and the schema is checked; the first tool call waits for it. If the database cannot open, every
call says why instead of the server dying before the host can show anything.

A server also loads the embedding model in the background once the database is open (so the first search
does not wait ~1 s for it, and the first tool call does not share the CPU with it); a hook that will
embed loads it at once, beside the database's opening.

Over stdio (and in memory) the MCP server's lifespan runs its own runtime; over HTTP the ASGI app runs
one and every MCP session, streamable or SSE, shares it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import anyio
import anyio.to_thread

from engram.server.settings import Settings
from engram.storage.embeddings import Embedder, make_embedder
from engram.storage.errors import BackendUnavailableError, EngramError, sole_exception
from engram.tools.memory.embedding_queue import EmbeddingWorker
from engram.tools.scope import AgentDefaults, Scope

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context  # not at run time: one-shot commands (a hook) skip importing MCP

    from engram.storage.database import Database

log = logging.getLogger(__name__)

DatabaseOpener = Callable[[], "Database"]
# When a runtime loads the embedding model ahead of its first use: never (on first use), at once, or once
# the database is open
WarmUp = Literal["never", "at_once", "after_database"]
WARM_UP_TEXT = "Engram loads its embedding model."


def default_opener(settings: Settings) -> DatabaseOpener:
    def open_default() -> Database:
        from engram.storage.database import open_database

        return open_database(settings.sqlalchemy_url(), settings.data_dir)

    return open_default


class Backend:
    """The database and the local principal, ready once `open` has run (or with the reason it failed)."""

    def __init__(self, opener: DatabaseOpener, embedding_model: str) -> None:
        self._opener = opener
        self._embedding_model = embedding_model
        self._ready = anyio.Event()
        self._database: Database | None = None
        self._local_owner: uuid.UUID | None = None
        self._principals: dict[str, uuid.UUID] = {}
        self._error: str | None = None

    async def open(self) -> None:
        try:
            self._database = await anyio.to_thread.run_sync(self._opener)
            from engram.storage import messages, passages
            from engram.storage.principals import LOCAL_PRINCIPAL, ensure_principal

            async with self._database.sessions.begin() as session:
                self._local_owner = await ensure_principal(session, LOCAL_PRINCIPAL)
                for kind, counts in (
                    ("archival passages", await passages.models_in_use(session)),
                    ("recorded messages", await messages.models_in_use(session)),
                ):
                    others = {model: n for model, n in counts.items() if model != self._embedding_model}
                    if others:
                        log.warning(
                            "%s embedded with another model than %s (%s): vector search skips them until "
                            "'engram reindex' re-embeds them; keyword search still finds them",
                            kind,
                            self._embedding_model,
                            ", ".join(f"{n} with {model}" for model, n in others.items()),
                        )
        except EngramError as exc:
            self._error = str(exc)
        except Exception as exc:  # anything else: the message still reaches every caller and the log
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("opening the database failed")
        finally:
            if self._error:
                log.error("the database is not available: %s", self._error)
            self._ready.set()

    async def wait_opened(self) -> None:
        """Until opening has ended, well or not."""
        await self._ready.wait()

    async def wait(self) -> tuple[Database, uuid.UUID]:
        await self._ready.wait()
        if self._database is None or self._local_owner is None:
            raise BackendUnavailableError(
                f"the database is not available: {self._error}; fix it and restart Engram ('engram doctor' checks it)"
            )
        return self._database, self._local_owner

    async def principal_id(self, name: str) -> uuid.UUID:
        """The id of the principal called `name`, created on first use; remembered for the process."""
        known = self._principals.get(name)
        if known is None:
            database, _ = await self.wait()
            from engram.storage.principals import ensure_principal

            async with database.sessions.begin() as session:
                known = self._principals[name] = await ensure_principal(session, name)
        return known

    async def close(self) -> None:
        await self._ready.wait()
        if self._database is not None:
            await self._database.close()


@dataclass(frozen=True)
class Runtime:
    """Settings, database, embedder and embedding worker: one per process, shared by every door."""

    settings: Settings
    backend: Backend
    embedder: Embedder
    worker: EmbeddingWorker | None = None  # embeds recorded messages in the background (servers only)
    warm_up: WarmUp = "never"

    @classmethod
    def create(
        cls,
        settings: Settings,
        opener: DatabaseOpener | None = None,
        *,
        background: bool = False,
        warm_up: WarmUp | None = None,
        optimize_model: bool = True,
    ) -> Runtime:
        """A runtime ready to `run()`; nothing is opened or loaded yet.

        `background` adds the embedding worker for recorded messages and loads the embedding model once the
        database is open (a server wants both; one-shot CLI commands do not: they would wait for them at
        exit). `warm_up` says otherwise when the model loads; `optimize_model=False` loads it faster and runs
        it slower (for a process that embeds a text or two, as a hook). `opener` replaces how the database is
        opened (the CLI starts the embedded server early).
        """
        embedder = make_embedder(
            settings.embedding_provider,
            settings.embedding_model,
            settings.data_dir / "models",
            optimize=optimize_model,
        )
        return cls(
            settings=settings,
            backend=Backend(opener or default_opener(settings), settings.embedding_model),
            embedder=embedder,
            worker=EmbeddingWorker(embedder, exact_scan_limit=settings.archival_exact_scan_limit)
            if background
            else None,
            warm_up=warm_up or ("after_database" if background else "never"),
        )

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Runtime]:
        """Open the database in a worker thread and run the embedding worker; yield at once; close on exit."""
        try:
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(self.backend.open)
                    if self.warm_up != "never":
                        group.start_soon(self._warm_up)
                    if self.worker is not None:
                        group.start_soon(self._run_worker, self.worker)
                    try:
                        yield self
                    finally:
                        if self.worker is not None:
                            self.worker.stop()  # it finishes its batch (cancelling it would leak a connection)
            finally:
                await self.backend.close()
        except BaseExceptionGroup as group:  # callers see the error itself, not the task group's wrapper
            raise sole_exception(group) from None

    async def _warm_up(self) -> None:
        """Load the embedding model ahead of the first search (a model that fails to load is reported by the
        first call that needs it)."""
        if self.warm_up == "after_database":
            await self.backend.wait_opened()
        if self.embedder.loaded:
            return
        log.debug("loading embedding model %s in the background", self.embedder.model)
        try:
            await self.embedder.embed([WARM_UP_TEXT])
        except Exception as exc:  # a head start only: it must never stop the server
            log.info("the embedding model did not load in advance (%s: %s)", type(exc).__name__, exc)
        else:
            log.debug("embedding model %s loaded", self.embedder.model)

    async def _run_worker(self, worker: EmbeddingWorker) -> None:
        try:
            database, _ = await self.backend.wait()
        except BackendUnavailableError:
            return  # every tool call reports it
        await worker.run(database.sessions)

    async def scope(self, principal: str | None = None) -> Scope:
        """The scope of `principal` (a name, as a bearer token maps to), or of the local principal (stdio,
        the CLI, and HTTP without tokens)."""
        database, owner = await self.backend.wait()
        if principal is not None:
            owner = await self.backend.principal_id(principal)
        return Scope(
            sessions=database.sessions,
            owner_id=owner,
            defaults=AgentDefaults(
                name=self.settings.default_agent,
                persona=self.settings.default_persona,
                human=self.settings.default_human,
                block_char_limit=self.settings.block_char_limit,
            ),
            max_input_chars=self.settings.max_input_chars,
            embedder=self.embedder,
            result_chars=self.settings.archival_result_chars,
            exact_scan_limit=self.settings.archival_exact_scan_limit,
            recorded=self.worker.wake if self.worker else _nothing,
        )

    async def principal_of_token(self, token: str) -> str | None:
        """The principal a token stored with `engram tokens create` maps to (None: unknown or revoked)."""
        from engram.storage.tokens import principal_of as stored_principal

        database, _ = await self.backend.wait()
        async with database.sessions.begin() as session:
            return await stored_principal(session, token)

    async def health(self) -> dict[str, object]:
        """For GET /healthz: the database reachable with the current schema, and the embedder's state."""
        report: dict[str, object] = {"embedder": self.embedder.model, "embedder_loaded": self.embedder.loaded}
        try:
            with anyio.fail_after(5):
                database, _ = await self.backend.wait()
                from sqlalchemy import text

                from engram.storage.migrations import HEAD

                async with database.sessions.begin() as session:
                    revision = await session.scalar(text("SELECT version_num FROM alembic_version"))
        except (EngramError, TimeoutError) as exc:
            return report | {"ok": False, "database": str(exc) or "not ready"}
        except Exception as exc:  # the database went away: say so, without its URL or driver detail
            return report | {"ok": False, "database": f"unreachable ({type(exc).__name__})"}
        current = revision == HEAD
        return report | {"ok": current, "database": "ok", "schema": revision, "schema_current": current}


def _nothing() -> None:
    pass


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    opener: DatabaseOpener | None = None,
    *,
    background: bool = False,
    warm_up: WarmUp | None = None,
    optimize_model: bool = True,
) -> AsyncIterator[Runtime]:
    """Create a runtime and run it: for one-shot commands, tests and benchmarks."""
    runtime = Runtime.create(settings, opener, background=background, warm_up=warm_up, optimize_model=optimize_model)
    async with runtime.run():
        yield runtime


def principal_of(connection: object) -> str | None:
    """The principal an HTTP request authenticated as (Starlette's `request.user`, set by server.http's
    authentication); None over stdio, in memory, and over HTTP without tokens."""
    from starlette.requests import HTTPConnection

    if not isinstance(connection, HTTPConnection) or "user" not in connection.scope:
        return None
    user = connection.user
    return str(user.username) if user.is_authenticated else None


async def scope_of(ctx: Context) -> Scope:
    """The scope of a tool call or resource read: its bearer token's principal over HTTP, else the local user."""
    runtime = cast(Runtime, ctx.request_context.lifespan_context)
    return await runtime.scope(principal_of(ctx.request_context.request))
