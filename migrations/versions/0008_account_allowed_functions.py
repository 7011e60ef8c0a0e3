"""registered databases record what their account can do and the extra SQL functions allowed

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

# Before query parameters were allowlisted, `?password=…` reached url_masked as it was typed.
_SECRET_QUERY_VALUE = re.compile(r"(?i)([?&][^=&#]*(?:pass|pwd|secret|token)[^=&#]*=)[^&#]*")

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registered_databases") as batch:
        # NULL: registered before accounts were checked; `schemas refresh` fills it in.
        batch.add_column(sa.Column("account_json", sa.Text(), nullable=True))
        batch.add_column(sa.Column("allowed_functions", sa.Text(), nullable=False, server_default="[]"))
    conn = op.get_bind()
    for row_id, masked in conn.execute(sa.text("SELECT id, url_masked FROM registered_databases")).all():
        cleaned = _SECRET_QUERY_VALUE.sub(r"\1***", str(masked))
        if cleaned != masked:
            conn.execute(
                sa.text("UPDATE registered_databases SET url_masked = :m WHERE id = :i"), {"m": cleaned, "i": row_id}
            )


def downgrade() -> None:
    with op.batch_alter_table("registered_databases") as batch:
        batch.drop_column("allowed_functions")
        batch.drop_column("account_json")
