"""`engram import`: exported chat histories into recall memory, idempotently, then embedded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engram.storage.errors import InvalidInputError
from engram.tools.arguments import check_conversation
from engram.tools.ingest.chat_exports import ExportFormat, ImportedConversation, detect_format, read_export
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.embedding_queue import embed_pending
from engram.tools.repositories import message_repo
from engram.tools.scope import Scope

MAX_SEARCHABLE_CHARS = 100_000  # of one message's text (the full message stays in its content)

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class ImportReport:
    format: str
    conversations: int = 0
    new_conversations: int = 0
    messages_added: int = 0
    messages_already_stored: int = 0
    embedded: int = 0


async def import_history(
    scope: Scope,
    agent: str,
    path: Path,
    export_format: ExportFormat | None = None,
    *,
    progress: Progress | None = None,
    embedding_progress: Progress | None = None,
) -> ImportReport:
    """Store every conversation of the export in the agent's recall memory (one transaction each; the agent
    is created if new), then embed what was added. Messages already imported (same source ids) are skipped;
    timestamps are kept."""
    chosen = export_format or detect_format(path)
    conversations = read_export(path, chosen)
    for conversation in conversations:
        try:
            check_conversation(conversation.key)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}: {exc}") from None
    report = ImportReport(format=chosen, conversations=len(conversations))
    total = sum(len(conversation.messages) for conversation in conversations)
    done = 0
    if progress:
        progress(done, total)
    agent_id = None
    for conversation in conversations:
        async with scope.sessions.begin() as session:
            agent_row = await resolve_agent(session, scope, agent, create=True)
            agent_id = agent_row.id
            existing = await message_repo.get_conversation(session, scope.owner_id, agent_row.id, conversation.key)
            thread = existing or await message_repo.ensure_conversation(
                session,
                scope.owner_id,
                agent_row.id,
                conversation.key,
                title=conversation.title,
                source=chosen,
                created_at=conversation.created_at,
            )
            report.new_conversations += existing is None
            stored = await message_repo.append(session, thread, drafts(conversation))
        added = sum(message.created for message in stored)
        report.messages_added += added
        report.messages_already_stored += len(stored) - added
        done += len(conversation.messages)
        if progress:
            progress(done, total)
    if agent_id is not None:  # a re-run after an interrupted one embeds what that one left
        report.embedded = await embed_pending(
            scope.sessions,
            scope.embedder,
            exact_scan_limit=scope.exact_scan_limit,
            agent_id=agent_id,
            progress=embedding_progress,
        )
    return report


def drafts(conversation: ImportedConversation) -> list[message_repo.NewMessage]:
    return [
        message_repo.NewMessage(
            role=message.role,
            text=message.text[:MAX_SEARCHABLE_CHARS],
            content=message.content,
            created_at=message.created_at,
            external_key=message.key,
        )
        for message in conversation.messages
    ]
