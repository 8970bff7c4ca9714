"""Standalone blocks: blocks.standalone marks a block made on its own (block_create), which deleting the agents
it is attached to keeps; blocks made with an agent go with the last agent that uses them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("blocks", sa.Column("standalone", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("blocks", "standalone")
