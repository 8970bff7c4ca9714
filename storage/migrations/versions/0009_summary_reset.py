"""Summaries of kind 'reset': the built-in agent's context started afresh (Letta's reset-messages) with nothing
carried over; the messages stay in recall memory.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("summaries_kind_valid", "summaries", type_="check")
    op.create_check_constraint("summaries_kind_valid", "summaries", "kind IN ('summary', 'truncation', 'reset')")


def downgrade() -> None:
    op.execute("DELETE FROM summaries WHERE kind = 'reset'")
    op.drop_constraint("summaries_kind_valid", "summaries", type_="check")
    op.create_check_constraint("summaries_kind_valid", "summaries", "kind IN ('summary', 'truncation')")
