"""The lifespan's context: settings plus a backend (database, local principal) that opens in the background.

`engram serve` answers `initialize` at once; the database (starting the embedded PostgreSQL, importing
SQLAlchemy, checking the schema) becomes ready meanwhile, and the first tool call waits for it. If it
cannot open, every tool call says why instead of the server dying before the host can show anything.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context

from engram.server.settings import Settings
from engram.storage.embeddings import Embedder, make_embedder
from engram.storage.errors import BackendUnavailableError, EngramError, sole_exception
from engram.tools.memory.embedding_queue import EmbeddingWorker
from engram.tools.scope import AgentDefaults, Scope

if TYPE_CHECKING:
    from engram.storage.database import Database

log = logging.getLogger(__name__)

DatabaseOpener = Callable[[], "Database"]


def default_opener(settings: Settings) -> DatabaseOpener:
    def open_default() -> Database:
        from engram.storage.database import open_database

        return open_database(settings.sqlalchemy_url(), settings.data_dir)

    return open_default


class Backend:
    """The database and the caller's principal, ready once `open` has run."""

    def __init__(self) -> None:
        self._ready = anyio.Event()
        self._database: Database | None = None
        self._local_owner: uuid.UUID | None = None
        self._principals: dict[str, uuid.UUID] = {}
        self._error: str | None = None

    async def open(self, opener: DatabaseOpener, embedding_model: str) -> None:
        try:
            self._database = await anyio.to_thread.run_sync(opener)
            from engram.storage import messages, passages
            from engram.storage.principals import LOCAL_PRINCIPAL, ensure_principal

            async with self._database.sessions.begin() as session:
                self._local_owner = await ensure_principal(session, LOCAL_PRINCIPAL)
                for kind, counts in (
                    ("archival passages", await passages.models_in_use(session)),
                    ("recorded messages", await messages.models_in_use(session)),
                ):
                    others = {model: n for model, n in counts.items() if model != embedding_model}
                    if others:
                        log.warning(
                            "%s embedded with another model than %s (%s): vector search skips them until "
                            "'engram reindex' re-embeds them; keyword search still finds them",
                            kind,
                            embedding_model,
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


PRINCIPAL_KEY = "engram.principal"  # where server.http puts the authenticated principal in the ASGI scope


def principal_of(request: object) -> str | None:
    """The principal an HTTP request was authenticated as (None: stdio, in memory, or HTTP without tokens)."""
    scope = getattr(request, "scope", None)
    found = scope.get(PRINCIPAL_KEY) if isinstance(scope, dict) else None
    return found if isinstance(found, str) else None


async def scope_of(ctx: Context) -> Scope:
    """The scope of a tool call or resource read: its bearer token's principal over HTTP, else the local user."""
    runtime = cast(Runtime, ctx.request_context.lifespan_context)
    return await runtime.scope(principal_of(ctx.request_context.request))


@dataclass(frozen=True)
class Runtime:
    """What the lifespan holds for the server's lifetime; tools reach it through the request context."""

    settings: Settings
    backend: Backend
    embedder: Embedder
    worker: EmbeddingWorker | None = None  # embeds recorded messages in the background (the server only)

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
    settings: Settings, opener: DatabaseOpener | None = None, *, background: bool = False
) -> AsyncIterator[Runtime]:
    """Yield at once; the backend opens in a worker thread (the embedded server's start blocks).

    `background` runs the embedding worker for recorded messages (the server wants it; one-shot CLI
    commands do not, they would wait for it at exit).
    """
    backend = Backend()
    embedder = make_embedder(settings.embedding_provider, settings.embedding_model, settings.data_dir / "models")
    worker = EmbeddingWorker(embedder, exact_scan_limit=settings.archival_exact_scan_limit) if background else None

    async def run_worker(worker: EmbeddingWorker) -> None:
        try:
            database, _ = await backend.wait()
        except BackendUnavailableError:
            return  # every tool call reports it
        await worker.run(database.sessions)

    try:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(backend.open, opener or default_opener(settings), settings.embedding_model)
                if worker is not None:
                    group.start_soon(run_worker, worker)
                try:
                    yield Runtime(settings=settings, backend=backend, embedder=embedder, worker=worker)
                finally:
                    if worker is not None:
                        worker.stop()  # it finishes its batch (cancelling it mid-transaction would leak a connection)
        finally:
            await backend.close()
    except BaseExceptionGroup as group:  # callers see the error itself, not the task group's wrapper
        raise sole_exception(group) from None
