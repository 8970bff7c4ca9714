"""Recall memory: conversations and their messages, searchable like archival passages.

A message's embedding is filled in the background after it is written; `ix_messages_pending` finds
those still waiting (also after a crash). HNSW indexes per dimension are created on first use by
storage.search.ensure_vector_index, as for passages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _reference(name: str, table: str) -> sa.Column[object]:
    return sa.Column(
        name, postgresql.UUID(as_uuid=True), sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        _reference("owner_id", "principals"),
        _reference("agent_id", "agents"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("agent_id", "name", name="conversations_agent_name_key"),
    )
    op.create_index("ix_conversations_agent_last", "conversations", ["agent_id", "last_message_at"])
    op.create_table(
        "messages",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        _reference("owner_id", "principals"),
        _reference("agent_id", "agents"),
        _reference("conversation_id", "conversations"),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("content", postgresql.JSONB, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("external_key", sa.Text, nullable=True),
        sa.Column("search_call", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("embedding", Vector(), nullable=True),
        sa.Column("embedding_model", sa.Text, nullable=True),
        sa.Column(
            "tsv",
            postgresql.TSVECTOR,
            sa.Computed("to_tsvector('english', text)", persisted=True),
            nullable=False,
        ),
        sa.UniqueConstraint("conversation_id", "ordinal", name="messages_conversation_ordinal_key"),
        sa.UniqueConstraint("conversation_id", "external_key", name="messages_conversation_key_key"),
        sa.CheckConstraint("role IN ('user', 'assistant', 'tool', 'system')", name="messages_role_valid"),
    )
    op.execute("ALTER TABLE messages ALTER COLUMN embedding SET STORAGE MAIN")  # as passages: exact scans stay fast
    op.create_index("ix_messages_agent_created", "messages", ["agent_id", "created_at"])
    op.create_index("ix_messages_tsv", "messages", ["tsv"], postgresql_using="gin")
    op.create_index(
        "ix_messages_pending", "messages", ["created_at"], postgresql_where=sa.text("embedding_model IS NULL")
    )


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("conversations")
