"""The tables, as SQLAlchemy 2 declarative models. Migrations in `storage/migrations` create them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def table_of(entity: type[Base]) -> Table:
    """An entity's table, for Core statements built once (SQLAlchemy types `__table__` as any FromClause)."""
    return cast(Table, entity.__table__)


class Principal(Base):
    """Who owns data: the local user over stdio, one per token over HTTP."""

    __tablename__ = "principals"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="agents_owner_name_key"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    system: Mapped[str] = mapped_column(Text, default="")
    llm: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")


class Block(Base):
    """A core-memory block. Owned by a principal; linked to one or more agents through agent_blocks."""

    __tablename__ = "blocks"
    __table_args__ = (
        CheckConstraint("char_length(value) <= char_limit", name="blocks_value_within_limit"),
        CheckConstraint("char_limit > 0", name="blocks_char_limit_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text, default="")
    char_limit: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    # Made on its own (block_create): deleting the agents it is attached to keeps it. A block made with an
    # agent goes when an agent_delete leaves it attached to no agent.
    standalone: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AgentBlock(Base):
    """Which blocks an agent sees, in which order. The label is copied here so it is unique per agent."""

    __tablename__ = "agent_blocks"
    __table_args__ = (UniqueConstraint("agent_id", "label", name="agent_blocks_agent_label_key"),)

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    block_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("blocks.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    label: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)


class BlockHistory(Base):
    """Every value a block had before an edit replaced it (audit and undo)."""

    __tablename__ = "block_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    block_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("blocks.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Passage(Base):
    """Archival memory: one passage of an agent, searchable by meaning (embedding) and by words (tsv)."""

    __tablename__ = "passages"
    __table_args__ = (UniqueConstraint("agent_id", "content_hash", name="passages_agent_content_key"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    embedding: Mapped[Any] = mapped_column(Vector(), nullable=True, deferred=True)
    embedding_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    tsv: Mapped[Any] = mapped_column(TSVECTOR, Computed("to_tsvector('english', text)", persisted=True), deferred=True)


class Conversation(Base):
    """A thread of one agent's messages (recall memory). `name` is what hosts and tools call it."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("agent_id", "name", name="conversations_agent_name_key"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    # The built-in agent sees the messages from this ordinal on; older ones are covered by its summaries.
    context_start: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Message(Base):
    """One message of a conversation: what was said (content JSON), its searchable text, and its vectors.

    `embedding` is filled in the background; until then the message is found by keyword only.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "ordinal", name="messages_conversation_ordinal_key"),
        UniqueConstraint("conversation_id", "external_key", name="messages_conversation_key_key"),
        CheckConstraint("role IN ('user', 'assistant', 'tool', 'system')", name="messages_role_valid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(Text)
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    text: Mapped[str] = mapped_column(Text)
    external_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    search_call: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    embedding: Mapped[Any] = mapped_column(Vector(), nullable=True, deferred=True)
    embedding_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    tsv: Mapped[Any] = mapped_column(TSVECTOR, Computed("to_tsvector('english', text)", persisted=True), deferred=True)


class Summary(Base):
    """A summary of a conversation's messages evicted from the agent's context, up to `last_ordinal`.

    Summaries are recursive: each one folds the previous summary in, so the newest covers ordinals
    `first_ordinal`..`last_ordinal` (from the conversation's start). The messages themselves stay in `messages`.
    """

    __tablename__ = "summaries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    first_ordinal: Mapped[int] = mapped_column(Integer)
    last_ordinal: Mapped[int] = mapped_column(Integer)
    evicted: Mapped[int] = mapped_column(Integer)  # messages this step took out of context
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)  # 'summary'; 'truncation' when the summarizer failed; 'reset' (empty)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ContextGiven(Base):
    """What memory_context gave one host session (a Claude Code session id) already, so that the session is not
    told the same thing twice: `item` is 'block:<id>:<version>', 'summary:<id>', 'passage:<id>' or 'message:<id>'."""

    __tablename__ = "context_given"

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    session: Mapped[str] = mapped_column(Text, primary_key=True)
    item: Mapped[str] = mapped_column(Text, primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    given_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Token(Base):
    """A bearer token for the HTTP transports: `name` is what an operator calls it; only a hash is kept."""

    __tablename__ = "tokens"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    principal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text, unique=True)
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
