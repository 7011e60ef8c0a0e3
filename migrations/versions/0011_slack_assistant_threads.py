"""Slack assistant threads: the context (the channel the user was viewing) of each thread

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_assistant_threads",
        sa.Column("channel_id", sa.String(512), primary_key=True),
        sa.Column("thread_ts", sa.String(512), primary_key=True),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("slack_assistant_threads")
