"""Engram's own agent files: whole agents out and in, with everything they hold (the format: `engram_format`).

Export reads one snapshot of the database, a batch of rows at a time, and writes the file a line at a time.
Import reads the agents and blocks first (a taken name is refused before anything is written), then stores every
member a batch at a time in one transaction (`engram_store`), then embeds what came without a vector the current
model made.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from engram.storage.errors import InvalidInputError, NotFoundError, first_line
from engram.tools.arguments import check_agent_name
from engram.tools.ingest.engram_format import (
    AGENTS,
    BLOCKS,
    CONVERSATIONS,
    EXPECTED,
    FORMAT,
    FORMAT_VERSION,
    HISTORY,
    MESSAGES,
    PASSAGES,
    SUMMARIES,
    AgentLine,
    ArchiveReader,
    ArchiveWriter,
    BlockLine,
    ConversationLine,
    EmbeddingInfo,
    HistoryLine,
    Manifest,
    MessageLine,
    PassageLine,
    SummaryLine,
    counted,
    problem,
)
from engram.tools.ingest.engram_store import MAX_AGENTS, Plan, Store
from engram.tools.ingest.transfer import AgentsImported
from engram.tools.memory.agents import MAX_BLOCKS_PER_AGENT
from engram.tools.repositories import block_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from engram.storage import transfer as transfer_repo
else:
    from engram.storage import lazy_module

    transfer_repo = lazy_module("engram.storage.transfer")


# Export


@dataclass(frozen=True)
class AgentsExported:
    agents: list[str]
    counts: dict[str, int]  # lines written to each member
    vectors: int  # passages and messages written with their vector


async def export_agents(scope: Scope, names: list[str], out: IO[bytes], with_vectors: bool = False) -> AgentsExported:
    """Write the named agents, with everything they hold, to `out` as an Engram agent file (from one snapshot of
    the database, a batch of rows at a time). `with_vectors` adds the vectors the current embedding model made,
    so that an import with the same model need not embed again."""
    wanted = list(dict.fromkeys(check_agent_name(name) for name in names))
    if not wanted:
        raise InvalidInputError("name at least one agent to export")
    model = scope.embedder.model
    writer = ArchiveWriter(out)
    dimension: int | None = None
    vectors = 0
    async with scope.sessions.begin() as session:
        await transfer_repo.begin_snapshot(session)
        found = await transfer_repo.agents_named(session, scope.owner_id, wanted)
        missing = [name for name in wanted if name not in found]
        if missing:
            raise NotFoundError(f"agent '{missing[0]}' does not exist; 'engram agents list' shows your agents")
        agents = [found[name] for name in wanted]
        blocks = await block_repo.of_agents(session, scope.owner_id, [agent.id for agent in agents])
        block_keys: dict[uuid.UUID, str] = {}
        for agent in agents:
            for block in blocks[agent.id]:
                block_keys.setdefault(block.id, f"block-{len(block_keys)}")
        agent_keys = {agent.id: f"agent-{number}" for number, agent in enumerate(agents)}

        writer.start(AGENTS)
        for agent in agents:
            writer.write(
                AGENTS,
                AgentLine(
                    key=agent_keys[agent.id],
                    name=agent.name,
                    description=agent.description,
                    system=agent.system,
                    llm=without_secrets(agent.llm or {}),
                    tags=list(agent.tags),
                    created_at=agent.created_at,
                    updated_at=agent.updated_at,
                    blocks=[block_keys[block.id] for block in blocks[agent.id]],
                ),
            )
        written: dict[uuid.UUID, Any] = {}
        for agent in agents:
            for block in blocks[agent.id]:
                written.setdefault(block.id, block)
        writer.start(BLOCKS)
        for block_id, block in written.items():
            writer.write(
                BLOCKS,
                BlockLine(
                    key=block_keys[block_id],
                    label=block.label,
                    value=block.value,
                    limit=block.char_limit,
                    description=block.description,
                    read_only=block.read_only,
                    standalone=block.standalone,
                    version=block.version,
                    created_at=block.created_at,
                    updated_at=block.updated_at,
                ),
            )
        writer.start(HISTORY)
        for block_id in written:
            async for batch in transfer_repo.block_history(session, scope.owner_id, [block_id]):
                for row in batch:
                    writer.write(
                        HISTORY,
                        HistoryLine(
                            block=block_keys[block_id],
                            version=row.version,
                            value=row.value,
                            actor=row.actor,
                            created_at=row.created_at,
                        ),
                    )
        writer.start(PASSAGES)
        for agent in agents:
            async for batch in transfer_repo.passages(
                session, scope.owner_id, agent.id, model=model if with_vectors else None
            ):
                for row in batch:
                    vector = getattr(row, "embedding", None)
                    if vector is not None:
                        dimension, vectors = (len(vector) - 4) // 4, vectors + 1
                    writer.write(
                        PASSAGES,
                        PassageLine(
                            agent=agent_keys[agent.id],
                            text=row.text,
                            tags=list(row.tags),
                            metadata=row.meta or {},
                            source=row.source,
                            created_at=row.created_at,
                            vector=_encode(vector),
                        ),
                    )
        conversation_keys: dict[uuid.UUID, str] = {}
        writer.start(CONVERSATIONS)
        for agent in agents:
            async for batch in transfer_repo.conversations(session, scope.owner_id, agent.id):
                for (thread,) in batch:
                    key = conversation_keys[thread.id] = f"conversation-{len(conversation_keys)}"
                    writer.write(
                        CONVERSATIONS,
                        ConversationLine(
                            key=key,
                            agent=agent_keys[agent.id],
                            name=thread.name,
                            title=thread.title,
                            source=thread.source,
                            context_start=thread.context_start,
                            created_at=thread.created_at,
                        ),
                    )
        writer.start(MESSAGES)
        for agent in agents:
            async for batch in transfer_repo.messages(
                session, scope.owner_id, agent.id, model=model if with_vectors else None
            ):
                for row in batch:
                    vector = getattr(row, "embedding", None)
                    if vector is not None:
                        dimension, vectors = (len(vector) - 4) // 4, vectors + 1
                    writer.write(
                        MESSAGES,
                        MessageLine(
                            conversation=conversation_keys[row.conversation_id],
                            ordinal=row.ordinal,
                            role=row.role,
                            content=row.content,
                            text=row.text,
                            external_key=row.external_key,
                            search_call=row.search_call,
                            created_at=row.created_at,
                            vector=_encode(vector),
                        ),
                    )
        writer.start(SUMMARIES)
        for agent in agents:
            async for batch in transfer_repo.summaries(session, scope.owner_id, agent.id):
                for row in batch:
                    writer.write(
                        SUMMARIES,
                        SummaryLine(
                            conversation=conversation_keys[row.conversation_id],
                            first_ordinal=row.first_ordinal,
                            last_ordinal=row.last_ordinal,
                            evicted=row.evicted,
                            text=row.text,
                            kind=row.kind,
                            created_at=row.created_at,
                        ),
                    )
    writer.close(
        Manifest(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            engram_version=engram_version(),
            exported_at=datetime.now(UTC),
            embedding=EmbeddingInfo(model=model, dimension=dimension, vectors=with_vectors),
            agents=wanted,
            counts=dict(writer.counts),
        )
    )
    return AgentsExported(agents=wanted, counts=dict(writer.counts), vectors=vectors)


SECRET_WORDS = ("key", "token", "secret", "password")


def without_secrets(llm: dict[str, Any]) -> dict[str, Any]:
    """The agent's model settings without litellm options that hold credentials (an api_key, say): a file one
    hands on must not carry them."""
    options = llm.get("options")
    if not isinstance(options, dict):
        return llm
    kept = {name: value for name, value in options.items() if not any(word in name.lower() for word in SECRET_WORDS)}
    return {**llm, "options": kept}


def _encode(wire: bytes | None) -> str | None:
    """A vector as the file holds it: base64 of little-endian float32s."""
    return None if wire is None else base64.b64encode(transfer_repo.float32s(wire)).decode("ascii")


def engram_version() -> str:
    try:
        return version("engram")
    except PackageNotFoundError:
        return "0.0.0"


# Import


async def import_agents(
    scope: Scope,
    file: IO[bytes],
    as_name: str | None = None,
    replace: bool = False,
    *,
    where: str | None = None,
) -> AgentsImported:
    """Store the agents of an Engram agent file, with everything they hold, in one transaction; then embed what
    came without a vector the current model made.

    An agent whose name is taken is refused unless `replace` (the existing agent and its own blocks are deleted
    first, in the same transaction); `as_name` imports a file's only agent under another name.
    """
    where = where or str(getattr(file, "name", None) or "the file")
    archive = ArchiveReader(file, where, EXPECTED)
    manifest = _manifest(archive)
    plan = _plan(archive, manifest, as_name)
    use_vectors = await _vectors_usable(scope, manifest)
    report = AgentsImported(format="engram", agents=list(plan.names.values()))
    if manifest.embedding.vectors and not use_vectors:
        report.skipped.append(
            f"the file's vectors (made by {manifest.embedding.model}): embedded again with {scope.embedder.model}"
        )
    try:
        async with scope.sessions.begin() as session:
            store = Store(session, scope, archive, manifest, use_vectors, report)
            await store.agents(plan, replace)
            await store.history()
            await store.passages()
            await store.recall()
            await store.index()
    except IntegrityError as exc:
        raise InvalidInputError(
            f"{where}: the database refused a record ({first_line(exc.orig)}); nothing was imported"
        ) from None
    if report.messages:
        scope.recorded()
    report.embedded = await _embed_missing(scope, report.agents)
    return report


def _manifest(archive: ArchiveReader) -> Manifest:
    raw = archive.manifest()
    if raw.get("format") != FORMAT:
        raise InvalidInputError(
            f"{archive.where}: its manifest says format {str(raw.get('format'))[:60]!r}, not {FORMAT!r}; {EXPECTED}"
        )
    written = raw.get("format_version")
    if not isinstance(written, int) or isinstance(written, bool):
        raise InvalidInputError(f"{archive.where}: its manifest has no format_version; {EXPECTED}")
    if written > FORMAT_VERSION:
        raise InvalidInputError(
            f"{archive.where} was written by a newer Engram ({raw.get('engram_version', '?')}, format version "
            f"{written}); this Engram reads format version {FORMAT_VERSION} and older: upgrade Engram to import it"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(f"{archive.where}: manifest.json: {problem(exc)}") from None


def _plan(archive: ArchiveReader, manifest: Manifest, as_name: str | None) -> Plan:
    agents: list[AgentLine] = []
    for number, line in archive.lines(AGENTS, AgentLine):
        if len(agents) == MAX_AGENTS:
            raise InvalidInputError(f"{archive.where}: {AGENTS} holds over {MAX_AGENTS} agents; import fewer at a time")
        if any(agent.key == line.key for agent in agents):
            raise InvalidInputError(f"{archive.where}: {AGENTS} line {number}: a second agent with key {line.key!r}")
        agents.append(line)
    counted(archive, manifest, AGENTS, len(agents))
    if not agents:
        raise InvalidInputError(f"{archive.where} holds no agents")
    if as_name is not None:
        check_agent_name(as_name)
        if len(agents) != 1:
            raise InvalidInputError(
                f"{archive.where} holds {len(agents)} agents ({', '.join(a.name for a in agents)}); --as names one "
                "agent only: import the file without it"
            )
    names = {agent.key: as_name if as_name is not None else agent.name for agent in agents}
    repeated = sorted({name for name in names.values() if list(names.values()).count(name) > 1})
    if repeated:
        raise InvalidInputError(f"{archive.where} holds several agents named '{repeated[0]}'")
    blocks: dict[str, BlockLine] = {}
    count = 0
    for number, block in archive.lines(BLOCKS, BlockLine):
        count += 1
        if block.key in blocks:
            raise InvalidInputError(f"{archive.where}: {BLOCKS} line {number}: a second block with key {block.key!r}")
        if len(blocks) == MAX_AGENTS * MAX_BLOCKS_PER_AGENT:
            raise InvalidInputError(f"{archive.where}: {BLOCKS} holds more blocks than its agents can have")
        blocks[block.key] = block
    counted(archive, manifest, BLOCKS, count)
    for agent in agents:
        labels: list[str] = []
        for key in agent.blocks:
            if key not in blocks:
                raise InvalidInputError(
                    f"{archive.where}: agent '{agent.name}' lists block {key!r}, which {BLOCKS} does not hold"
                )
            labels.append(blocks[key].label)
        if len(set(labels)) != len(labels):
            raise InvalidInputError(f"{archive.where}: agent '{agent.name}' has two blocks with one label")
    return Plan(agents=agents, names=names, blocks=blocks)


async def _vectors_usable(scope: Scope, manifest: Manifest) -> bool:
    """Whether the file's vectors can be stored as they are: made by the model in use, of its dimension."""
    embedding = manifest.embedding
    if not embedding.vectors or embedding.model != scope.embedder.model or embedding.dimension is None:
        return False
    [probe] = await scope.embedder.embed(["dimension"])
    return len(probe) == embedding.dimension


async def _embed_missing(scope: Scope, agents: list[str]) -> int:
    """Embed the imported agents' passages and messages that came without a usable vector."""
    from engram.tools.ingest.documents import reindex

    embedded = 0
    for name in agents:
        done = await reindex(scope, name)
        embedded += done.reembedded + done.messages
    return embedded
