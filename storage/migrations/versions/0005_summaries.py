"""The built-in agent's context: summaries of evicted messages, and where each conversation's context starts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("context_start", sa.Integer, nullable=False, server_default=sa.text("1")))
    op.create_table(
        "summaries",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "owner_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("principals.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "agent_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "conversation_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("first_ordinal", sa.Integer, nullable=False),
        sa.Column("last_ordinal", sa.Integer, nullable=False),
        sa.Column("evicted", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('summary', 'truncation')", name="summaries_kind_valid"),
    )
    op.create_index("ix_summaries_conversation_id", "summaries", ["conversation_id", "id"])


def downgrade() -> None:
    op.drop_table("summaries")
    op.drop_column("conversations", "context_start")
