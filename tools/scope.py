"""What every memory operation runs with: the database, the caller's principal, and the limits in force."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from engram.storage.embeddings import Embedder


@dataclass(frozen=True)
class AgentDefaults:
    """How agents are made when a call names none, or names no blocks."""

    name: str
    persona: str
    human: str
    block_char_limit: int


@dataclass(frozen=True)
class Scope:
    """One caller's view of memory. Operations never reach data outside `owner_id`."""

    sessions: async_sessionmaker[AsyncSession]
    owner_id: uuid.UUID
    defaults: AgentDefaults
    max_input_chars: int
    embedder: Embedder
    result_chars: int = 600
    exact_scan_limit: int = 10_000
    recorded: Callable[[], None] = field(default=lambda: None)  # messages were written: wake the embedding worker
