"""conversation threads (follow-up context) and claimed platform deliveries (retries answer once)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bot_threads",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("workspace", sa.String(512), primary_key=True),
        sa.Column("channel", sa.String(512), primary_key=True),
        sa.Column("thread", sa.String(512), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "claimed_deliveries",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_claimed_deliveries_claimed_at", "claimed_deliveries", ["claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_claimed_deliveries_claimed_at", table_name="claimed_deliveries")
    op.drop_table("claimed_deliveries")
    op.drop_table("bot_threads")
