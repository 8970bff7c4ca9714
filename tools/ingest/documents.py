"""Loading documents into archival memory (`engram ingest`) and re-embedding memory (`engram reindex`)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engram.storage.errors import InvalidInputError, sole_exception
from engram.tools.ingest.chunking import chunk_text
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.embedding_queue import EMBED_BATCH, embed_pending
from engram.tools.repositories import agent_repo, message_repo, passage_repo, search
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


SUFFIXES = (".txt", ".md", ".markdown")
MAX_FILE_BYTES = 20_000_000

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class IngestReport:
    files: int = 0
    unchanged_files: int = 0
    passages_added: int = 0
    passages_already_stored: int = 0
    passages_replaced: int = 0


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """The .txt and .md files named, and those under named directories (recursively), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES))
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise InvalidInputError(f"{path} is not a .txt or .md file; only plain text and Markdown are ingested")
            found.append(path)
        else:
            raise InvalidInputError(f"{path} does not exist")
    return list(dict.fromkeys(p.resolve() for p in found))


async def ingest(scope: Scope, agent: str, paths: Sequence[Path], progress: Progress | None = None) -> IngestReport:
    """Chunk, embed and store each file; an unchanged file adds nothing, a changed one replaces its passages."""
    files = collect_files(paths)
    documents: list[tuple[Path, str, str]] = []
    for path in files:
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise InvalidInputError(f"{path} is {len(data)} bytes; files over {MAX_FILE_BYTES} bytes are not ingested")
        try:
            documents.append((path, data.decode("utf-8"), hashlib.sha256(data).hexdigest()))
        except UnicodeDecodeError:
            raise InvalidInputError(f"{path} is not UTF-8 text; convert it first") from None

    report = IngestReport(files=len(files))
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        todo: list[tuple[Path, str, list[str]]] = []
        for path, text, digest in documents:
            if digest in await passage_repo.source_versions(session, scope.owner_id, agent_row.id, str(path)):
                report.unchanged_files += 1
                continue
            todo.append((path, digest, [c for c in chunk_text(text) if c.strip()]))
    total = sum(len(chunks) for _, _, chunks in todo)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    advance(0)
    for path, digest, chunks in todo:
        drafts = [
            passage_repo.NewPassage(
                text=chunk,
                embedding=None,
                tags=[path.stem.lower()],
                source=str(path),
                metadata={"file_sha256": digest, "chunk": number},
            )
            for number, chunk in enumerate(chunks)
        ]
        async with scope.sessions.begin() as session:  # one transaction per file: replace its old passages
            if not await agent_repo.get_by_name(session, scope.owner_id, agent_row.name):
                raise InvalidInputError(f"agent '{agent_row.name}' was deleted during the ingest")
            report.passages_replaced += await passage_repo.delete_source(
                session, scope.owner_id, agent_row.id, str(path)
            )
            stored = await store_passages(scope, session, agent_row.id, drafts, advance)
        added = sum(created for _, created in stored)
        report.passages_added += added
        report.passages_already_stored += len(stored) - added
    return report


async def store_passages(
    scope: Scope,
    session: AsyncSession,
    agent_id: uuid.UUID,
    drafts: Sequence[passage_repo.NewPassage],
    advance: Callable[[int], None] | None = None,
) -> list[tuple[uuid.UUID, bool]]:
    """Embed the drafts (their `embedding` unset) in batches and insert them in the session's transaction.

    The next batch is embedded (in a worker thread) while the previous one is written, so the model
    and PostgreSQL work at the same time. Returns (id, created) per draft, as insert_many does.
    """
    batches = [list(drafts[start : start + EMBED_BATCH]) for start in range(0, len(drafts), EMBED_BATCH)]
    send, receive = anyio.create_memory_object_stream[tuple[list[passage_repo.NewPassage], list[Any]]](1)

    async def embed_ahead() -> None:
        async with send:
            for batch in batches:
                await send.send((batch, await scope.embedder.embed([draft.text for draft in batch])))

    stored: list[tuple[uuid.UUID, bool]] = []
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(embed_ahead)
            async with receive:
                async for batch, vectors in receive:
                    ready = [replace(draft, embedding=vector) for draft, vector in zip(batch, vectors, strict=True)]
                    stored += await passage_repo.insert_many(
                        session, scope.owner_id, agent_id, scope.embedder.model, ready
                    )
                    await search.index_when_large(
                        session,
                        "passages",
                        [agent_id],
                        model=scope.embedder.model,
                        dimension=len(vectors[0]),
                        exact_scan_limit=scope.exact_scan_limit,
                    )
                    if advance:
                        advance(len(batch))
    except BaseExceptionGroup as group:
        raise sole_exception(group) from None
    return stored


@dataclass
class ReindexReport:
    model: str
    reembedded: int  # archival passages
    messages: int = 0  # recorded messages embedded (re-embedded, or never embedded before)


async def reindex(scope: Scope, agent: str | None, progress: Progress | None = None) -> ReindexReport:
    """Re-embed every passage and message (of one agent, or all of the caller's) not embedded with the current
    model; messages still waiting for their first embedding are embedded too."""
    agent_id = None
    if agent is not None:
        async with scope.sessions.begin() as session:
            agent_id = (await resolve_agent(session, scope, agent)).id
    model = scope.embedder.model
    async with scope.sessions.begin() as session:
        total = await passage_repo.count_stale(session, scope.owner_id, agent_id, model)
    done = 0
    if progress:
        progress(done, total)
    while True:
        async with scope.sessions.begin() as session:
            batch = await passage_repo.stale(session, scope.owner_id, agent_id, model, limit=EMBED_BATCH * 4)
        if not batch:
            break
        vectors = await scope.embedder.embed([text for _, _, text in batch])
        async with scope.sessions.begin() as session:
            await search.set_embeddings(
                session,
                "passages",
                [(passage_id, vector) for (passage_id, _, _), vector in zip(batch, vectors, strict=True)],
                model,
            )
            await search.index_when_large(
                session,
                "passages",
                [owner for _, owner, _ in batch],
                model=model,
                dimension=len(vectors[0]),
                exact_scan_limit=scope.exact_scan_limit,
            )
        done += len(batch)
        if progress:
            progress(done, total)
    async with scope.sessions.begin() as session:
        await message_repo.mark_stale_pending(session, scope.owner_id, agent_id, model)
    messages = await embed_pending(
        scope.sessions, scope.embedder, exact_scan_limit=scope.exact_scan_limit, agent_id=agent_id, progress=progress
    )
    return ReindexReport(model=model, reembedded=done, messages=messages)
