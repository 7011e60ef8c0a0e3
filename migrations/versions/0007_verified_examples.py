"""verified (question, SQL) examples per database: from 👍, admin corrections and admin commands

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verified_examples",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("question_key", sa.String(512), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("schema_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("database", "question_key", name="uq_verified_examples_question"),
        sa.CheckConstraint("status IN ('active', 'set_aside')", name="ck_verified_examples_status"),
    )
    op.create_index("ix_verified_examples_database", "verified_examples", ["database"])


def downgrade() -> None:
    op.drop_index("ix_verified_examples_database", table_name="verified_examples")
    op.drop_table("verified_examples")
