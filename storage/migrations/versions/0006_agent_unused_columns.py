"""Drop agents.embedding_model and agents.metadata: nothing reads or writes them (each passage and message
records the model of its own vector).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("agents", "embedding_model")
    op.drop_column("agents", "metadata")


def downgrade() -> None:
    op.add_column("agents", sa.Column("embedding_model", sa.Text, nullable=True))
    op.add_column("agents", sa.Column("metadata", postgresql.JSONB, nullable=False, server_default="{}"))
