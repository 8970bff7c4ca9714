"""Archival memory: passages with tags, source, a generated full-text vector and an embedding.

Vector indexes are per embedding dimension (HNSW over `embedding::vector(N)`), created by
storage.passages.ensure_vector_index when a model of that dimension is first used.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passages",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "owner_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("principals.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "agent_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("embedding", Vector(), nullable=True),
        sa.Column("embedding_model", sa.Text, nullable=True),
        sa.Column(
            "tsv",
            postgresql.TSVECTOR,
            sa.Computed("to_tsvector('english', text)", persisted=True),
            nullable=False,
        ),
        sa.UniqueConstraint("agent_id", "content_hash", name="passages_agent_content_key"),
    )
    # Keep vectors in the row: out-of-line (TOAST) storage made exact scans several times slower.
    op.execute("ALTER TABLE passages ALTER COLUMN embedding SET STORAGE MAIN")
    op.create_index("ix_passages_agent_created", "passages", ["agent_id", "created_at"])
    op.create_index("ix_passages_agent_source", "passages", ["agent_id", "source"])
    op.create_index("ix_passages_tsv", "passages", ["tsv"], postgresql_using="gin")
    op.create_index("ix_passages_tags", "passages", ["tags"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("passages")
