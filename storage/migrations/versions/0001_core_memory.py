"""Core memory: principals, agents, blocks, agent_blocks, block_history; the vector extension.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "principals",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        _timestamp("created_at"),
    )
    op.create_table(
        "agents",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "owner_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("principals.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("system", sa.Text, nullable=False, server_default=""),
        sa.Column("llm", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("embedding_model", sa.Text, nullable=True),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default="{}"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.UniqueConstraint("owner_id", "name", name="agents_owner_name_key"),
    )
    op.create_index("ix_agents_owner_id", "agents", ["owner_id"])
    op.create_table(
        "blocks",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "owner_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("principals.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False, server_default=""),
        sa.Column("char_limit", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint("char_length(value) <= char_limit", name="blocks_value_within_limit"),
        sa.CheckConstraint("char_limit > 0", name="blocks_char_limit_positive"),
    )
    op.create_index("ix_blocks_owner_id", "blocks", ["owner_id"])
    op.create_table(
        "agent_blocks",
        sa.Column(
            "agent_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "block_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("blocks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("agent_id", "label", name="agent_blocks_agent_label_key"),
    )
    op.create_index("ix_agent_blocks_block_id", "agent_blocks", ["block_id"])
    op.create_table(
        "block_history",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "block_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("blocks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        _timestamp("created_at"),
    )
    op.create_index("ix_block_history_block_id", "block_history", ["block_id"])


def downgrade() -> None:
    for table in ("block_history", "agent_blocks", "blocks", "agents", "principals"):
        op.drop_table(table)
