"""a business glossary per database (terms, metrics, column notes, hidden columns), versioned;
an index of the distinct values of low-cardinality text columns, kept out of the registry row

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "glossary_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('term', 'metric', 'column', 'hidden')", name="ck_glossary_entries_kind"),
        sa.UniqueConstraint("database", "kind", "name", "version", name="uq_glossary_entries_version"),
    )
    op.create_index("ix_glossary_entries_database", "glossary_entries", ["database"])
    op.create_table(
        "value_indexes",
        sa.Column("database", sa.String(63), primary_key=True),
        sa.Column("schema_hash", sa.String(64), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        # up to about a megabyte: MySQL's TEXT holds 64 KiB
        sa.Column("values_json", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("value_indexes")
    op.drop_index("ix_glossary_entries_database", table_name="glossary_entries")
    op.drop_table("glossary_entries")
