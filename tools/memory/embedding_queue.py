"""Embedding recorded messages after they are written, so recording stays fast.

A message is stored without a vector (keyword search finds it at once) and queued by being so: the
server's `EmbeddingWorker` embeds waiting messages in batches when woken by a write, and at start-up
(so messages written just before a crash, or by `engram record` while no server ran, are not left out).
`embed_pending` does the same work to completion for `engram import` and `engram reindex`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from engram.storage.embeddings import Embedder
from engram.storage.errors import EngramError
from engram.tools.repositories import message_repo, search

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

EMBED_BATCH = 64
POLL_SECONDS = 5.0  # how often the worker looks for messages written by other processes
RETRY_SECONDS = 30.0  # after a failure (the model cannot load, the database is gone)
OTHERS_SECONDS = 0.2  # when the only waiting messages are being embedded by another process


async def embed_batch(
    sessions: async_sessionmaker[AsyncSession],
    embedder: Embedder,
    *,
    exact_scan_limit: int,
    agent_id: uuid.UUID | None = None,
) -> int:
    """Embed up to EMBED_BATCH waiting messages in one transaction; returns how many (0: none to claim).

    Agents past `exact_scan_limit` messages get the HNSW index (storage.search.index_when_large)."""
    async with sessions.begin() as session:
        claimed = await message_repo.claim_pending(session, limit=EMBED_BATCH, agent_id=agent_id)
        if not claimed:
            return 0
        vectors = await embedder.embed([message.text for message in claimed])
        await search.set_embeddings(
            session,
            "messages",
            [(message.id, vector) for message, vector in zip(claimed, vectors, strict=True)],
            embedder.model,
        )
        await search.index_when_large(
            session,
            "messages",
            [message.agent_id for message in claimed],
            model=embedder.model,
            dimension=len(vectors[0]),
            exact_scan_limit=exact_scan_limit,
        )
    return len(claimed)


async def embed_pending(
    sessions: async_sessionmaker[AsyncSession],
    embedder: Embedder,
    *,
    exact_scan_limit: int,
    agent_id: uuid.UUID | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Embed waiting messages (of one agent, or all) until none wait, including those another process was
    embedding meanwhile. Returns how many this call embedded."""
    async with sessions.begin() as session:
        total = await message_repo.count_pending(session, agent_id=agent_id)
    done = 0
    if progress:
        progress(done, total)
    while True:
        count = await embed_batch(sessions, embedder, exact_scan_limit=exact_scan_limit, agent_id=agent_id)
        if count:
            done += count
            if progress:
                progress(min(done, total), total)
            continue
        async with sessions.begin() as session:
            if not await message_repo.count_pending(session, agent_id=agent_id):
                return done
        await anyio.sleep(OTHERS_SECONDS)


class EmbeddingWorker:
    """Runs for the server's lifetime: embeds waiting messages whenever woken, and every POLL_SECONDS."""

    def __init__(self, embedder: Embedder, *, exact_scan_limit: int) -> None:
        self._embedder = embedder
        self._exact_scan_limit = exact_scan_limit
        self._wake = anyio.Event()
        self._stopping = False
        self.idle = anyio.Event()  # set while no message this worker can claim is waiting

    def wake(self) -> None:
        """Messages were written: embed them soon."""
        if self.idle.is_set():
            self.idle = anyio.Event()
        self._wake.set()

    def stop(self) -> None:
        """Return from `run` after the batch in progress (whose transaction then commits)."""
        self._stopping = True
        self._wake.set()

    async def run(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        while not self._stopping:
            self._wake = anyio.Event()
            delay = POLL_SECONDS
            try:
                while not self._stopping and await embed_batch(
                    sessions, self._embedder, exact_scan_limit=self._exact_scan_limit
                ):
                    pass
            except EngramError as exc:
                log.warning("embedding recorded messages failed, retrying in %.0f s: %s", RETRY_SECONDS, exc)
                delay = RETRY_SECONDS
            except Exception:
                log.exception("embedding recorded messages failed, retrying in %.0f s", RETRY_SECONDS)
                delay = RETRY_SECONDS
            else:
                if not self._wake.is_set():
                    self.idle.set()
            with anyio.move_on_after(delay):
                await self._wake.wait()
