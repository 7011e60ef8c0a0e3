"""the bot's state: audit log, feedback, channel access, origins, channel defaults (see bot/store.py)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(512), nullable=False),
        sa.Column("channel", sa.String(512), nullable=False),
        sa.Column("user_id", sa.String(512), nullable=False),
        sa.Column("database", sa.String(63), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=True),
        sa.Column("guard_verdict", sa.String(64), nullable=True),
        sa.Column("preview_rows", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("adapter", sa.String(64), nullable=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("audit_id", sa.Integer(), sa.ForeignKey("audit_log.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(512), nullable=False),
        sa.Column("rating", sa.String(4), nullable=False),
        sa.Column("corrected_sql", sa.Text(), nullable=True),
        sa.CheckConstraint("rating IN ('up', 'down')", name="ck_feedback_rating"),
    )
    op.create_index("ix_feedback_audit_id", "feedback", ["audit_id"])
    op.create_table(
        "db_access",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(512), nullable=False),
        sa.Column("channel", sa.String(512), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(512), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("database", "platform", "workspace", "channel", name="uq_db_access_scope"),
    )
    op.create_table(
        "db_origin",
        sa.Column("database", sa.String(63), primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(512), nullable=False),
    )
    op.create_table(
        "channel_defaults",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("workspace", sa.String(512), primary_key=True),
        sa.Column("channel", sa.String(512), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channel_defaults")
    op.drop_table("db_origin")
    op.drop_table("db_access")
    op.drop_index("ix_feedback_audit_id", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    op.drop_table("audit_log")
