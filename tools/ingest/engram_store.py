"""Storing an Engram agent file's records, member after member, a batch at a time, in the caller's transaction
(`engram_files.import_agents` runs it)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from engram.storage.errors import ConflictError, InvalidInputError
from engram.tools.ingest.engram_format import (
    AGENTS,
    BLOCKS,
    CONVERSATIONS,
    HISTORY,
    MESSAGES,
    PASSAGES,
    SUMMARIES,
    AgentLine,
    ArchiveReader,
    BlockLine,
    ConversationLine,
    HistoryLine,
    Manifest,
    MessageLine,
    PassageLine,
    SummaryLine,
    counted,
)
from engram.tools.ingest.transfer import AgentsImported
from engram.tools.repositories import agent_repo, block_repo, search
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engram.storage import transfer as transfer_repo
else:
    from engram.storage import lazy_module

    transfer_repo = lazy_module("engram.storage.transfer")

MAX_AGENTS = 1000  # in one file: agents and their blocks are held in memory while importing
BATCH = 1000  # rows stored at a time


@dataclass
class Plan:
    """The file's agents and blocks, read and checked before anything is stored."""

    agents: list[AgentLine]
    names: dict[str, str]  # agent key -> the name it is stored under
    blocks: dict[str, BlockLine]


class Store:
    """One import's writes, member after member, in the caller's transaction."""

    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        archive: ArchiveReader,
        manifest: Manifest,
        use_vectors: bool,
        report: AgentsImported,
    ) -> None:
        self.session, self.scope, self.archive, self.manifest = session, scope, archive, manifest
        self.use_vectors, self.report = use_vectors, report
        self.agent_ids: dict[str, uuid.UUID] = {}
        self.block_ids: dict[str, uuid.UUID] = {}
        self.conversations: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}  # key -> (conversation id, agent id)

    def _refuse(self, member: str, number: int, message: str) -> InvalidInputError:
        return InvalidInputError(f"{self.archive.where}: {member} line {number}: {message}")

    async def agents(self, plan: Plan, replace: bool) -> None:
        session, owner = self.session, self.scope.owner_id
        for name in plan.names.values():
            existing = await agent_repo.get_by_name(session, owner, name)
            if existing is None:
                continue
            if not replace:
                raise ConflictError(
                    f"agent '{name}' already exists; import it under another name (--as NAME) or replace the "
                    "existing agent (--replace)"
                )
            own = [block.id for block in await block_repo.of_agent(session, owner, existing.id)]
            await agent_repo.delete_agent(session, owner, existing.id)
            await block_repo.delete_unlinked(session, owner, own)
        for agent in plan.agents:
            name = plan.names[agent.key]
            agent_id = await transfer_repo.insert_agent(
                session,
                owner,
                name=name,
                description=agent.description,
                system=agent.system,
                llm=agent.llm,
                tags=agent.tags,
                created_at=agent.created_at,
                updated_at=agent.updated_at,
            )
            if agent_id is None:  # made meanwhile by another writer
                raise ConflictError(f"agent '{name}' already exists; import it under another name (--as NAME)")
            self.agent_ids[agent.key] = agent_id
            for key in agent.blocks:
                if key not in self.block_ids:
                    block = plan.blocks[key]
                    self.block_ids[key] = await transfer_repo.insert_block(
                        session,
                        owner,
                        label=block.label,
                        value=block.value,
                        char_limit=block.limit,
                        description=block.description,
                        read_only=block.read_only,
                        standalone=block.standalone,
                        version=block.version,
                        created_at=block.created_at,
                        updated_at=block.updated_at,
                    )
            await transfer_repo.link_blocks(
                session, agent_id, [(self.block_ids[key], plan.blocks[key].label) for key in agent.blocks]
            )
        unattached = [key for key in plan.blocks if key not in self.block_ids]
        if unattached:
            raise InvalidInputError(
                f"{self.archive.where}: block {unattached[0]!r} is attached to none of the file's agents"
            )
        self.report.blocks = len(self.block_ids)

    async def history(self) -> None:
        rows: list[dict[str, Any]] = []
        count = 0
        for number, line in self.archive.lines(HISTORY, HistoryLine):
            count += 1
            if line.block not in self.block_ids:
                raise self._refuse(HISTORY, number, f"block {line.block!r} is not in {BLOCKS}")
            rows.append(
                {
                    "block_id": self.block_ids[line.block],
                    "version": line.version,
                    "value": line.value,
                    "actor": line.actor,
                    "created_at": line.created_at,
                }
            )
            if len(rows) == BATCH:
                await transfer_repo.insert_block_history(self.session, rows)
                rows = []
        await transfer_repo.insert_block_history(self.session, rows)
        counted(self.archive, self.manifest, HISTORY, count)

    def _vector(self, member: str, number: int, encoded: str | None) -> tuple[Any, str | None]:
        """(vector, model) to store for a record: its own vector when usable, else none (embedded afterwards)."""
        if encoded is None or not self.use_vectors:
            return None, None
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise self._refuse(member, number, "'vector' is not base64") from None
        if len(raw) != 4 * (self.manifest.embedding.dimension or 0):
            raise self._refuse(
                member, number, f"'vector' holds {len(raw) // 4} numbers, not {self.manifest.embedding.dimension}"
            )
        if not np.isfinite(np.frombuffer(raw, dtype="<f4")).all():
            raise self._refuse(member, number, "'vector' holds a number that is not finite")
        return transfer_repo.WireVector.of_float32s(raw), self.scope.embedder.model

    async def passages(self) -> None:
        batches: dict[uuid.UUID, list[dict[str, Any]]] = {}
        count = 0
        for number, line in self.archive.lines(PASSAGES, PassageLine):
            count += 1
            agent_id = self.agent_ids.get(line.agent)
            if agent_id is None:
                raise self._refuse(PASSAGES, number, f"agent {line.agent!r} is not in {AGENTS}")
            vector, model = self._vector(PASSAGES, number, line.vector)
            batch = batches.setdefault(agent_id, [])
            batch.append(
                {
                    "text": line.text,
                    "tags": line.tags,
                    "metadata": line.metadata,
                    "source": line.source,
                    "created_at": line.created_at,
                    "embedding": vector,
                    "embedding_model": model,
                }
            )
            if len(batch) == BATCH:
                await transfer_repo.insert_passages(self.session, self.scope.owner_id, agent_id, batch)
                batches[agent_id] = []
        for agent_id, batch in batches.items():
            await transfer_repo.insert_passages(self.session, self.scope.owner_id, agent_id, batch)
        counted(self.archive, self.manifest, PASSAGES, count)
        for agent_id in self.agent_ids.values():  # a text an agent holds twice is stored once
            stored = await transfer_repo.counts(self.session, self.scope.owner_id, agent_id)
            self.report.passages += stored["passages"]

    async def recall(self) -> None:
        session, owner = self.session, self.scope.owner_id
        count = 0
        names: set[tuple[uuid.UUID, str]] = set()
        for number, line in self.archive.lines(CONVERSATIONS, ConversationLine):
            count += 1
            agent_id = self.agent_ids.get(line.agent)
            if agent_id is None:
                raise self._refuse(CONVERSATIONS, number, f"agent {line.agent!r} is not in {AGENTS}")
            if line.key in self.conversations:
                raise self._refuse(CONVERSATIONS, number, f"a second conversation with key {line.key!r}")
            if (agent_id, line.name) in names:
                raise self._refuse(CONVERSATIONS, number, f"a second conversation named '{line.name}' of one agent")
            names.add((agent_id, line.name))
            conversation_id = await transfer_repo.insert_conversation(
                session,
                owner,
                agent_id,
                name=line.name,
                title=line.title,
                source=line.source,
                context_start=line.context_start,
                created_at=line.created_at,
            )
            self.conversations[line.key] = (conversation_id, agent_id)
        counted(self.archive, self.manifest, CONVERSATIONS, count)
        self.report.conversations = count

        batches: dict[uuid.UUID, list[dict[str, Any]]] = {}
        count = 0
        for number, message in self.archive.lines(MESSAGES, MessageLine):
            count += 1
            conversation_id, agent_id = self._conversation(MESSAGES, number, message.conversation)
            vector, model = self._vector(MESSAGES, number, message.vector)
            batch = batches.setdefault(agent_id, [])
            batch.append(
                {
                    "conversation_id": conversation_id,
                    "ordinal": message.ordinal,
                    "role": message.role,
                    "content": message.content,
                    "text": message.text,
                    "external_key": message.external_key,
                    "search_call": message.search_call,
                    "created_at": message.created_at,
                    "embedding": vector,
                    "embedding_model": model,
                }
            )
            if len(batch) == BATCH:
                await transfer_repo.insert_messages(session, owner, agent_id, batch)
                batches[agent_id] = []
        for agent_id, batch in batches.items():
            await transfer_repo.insert_messages(session, owner, agent_id, batch)
        counted(self.archive, self.manifest, MESSAGES, count)
        self.report.messages = count
        await transfer_repo.count_messages(session, [ids[0] for ids in self.conversations.values()])

        summaries: dict[uuid.UUID, list[dict[str, Any]]] = {}
        count = 0
        for number, summary in self.archive.lines(SUMMARIES, SummaryLine):
            count += 1
            conversation_id, agent_id = self._conversation(SUMMARIES, number, summary.conversation)
            if summary.last_ordinal < summary.first_ordinal:
                raise self._refuse(SUMMARIES, number, "'last_ordinal' is before 'first_ordinal'")
            summaries.setdefault(agent_id, []).append(
                {
                    "conversation_id": conversation_id,
                    "first_ordinal": summary.first_ordinal,
                    "last_ordinal": summary.last_ordinal,
                    "evicted": summary.evicted,
                    "text": summary.text,
                    "kind": summary.kind,
                    "created_at": summary.created_at,
                }
            )
        for agent_id, rows in summaries.items():
            await transfer_repo.insert_summaries(session, owner, agent_id, rows)
        counted(self.archive, self.manifest, SUMMARIES, count)
        self.report.summaries = count

    def _conversation(self, member: str, number: int, key: str) -> tuple[uuid.UUID, uuid.UUID]:
        found = self.conversations.get(key)
        if found is None:
            raise self._refuse(member, number, f"conversation {key!r} is not in {CONVERSATIONS}")
        return found

    async def index(self) -> None:
        """The HNSW index, built in one go, when an imported agent's stored vectors outgrow exact scans."""
        dimension = self.manifest.embedding.dimension
        if not self.use_vectors or dimension is None:
            return
        tables: tuple[Literal["passages", "messages"], ...] = ("passages", "messages")
        for table in tables:
            await search.index_when_large(
                self.session,
                table,
                self.agent_ids.values(),
                model=self.scope.embedder.model,
                dimension=dimension,
                exact_scan_limit=self.scope.exact_scan_limit,
            )
