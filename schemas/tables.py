"""The registry's own table, apart from ``Registry`` so that the value index can join on it
(a value index is current only while its schema hash is the registered one) without importing
the registry that builds on it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chat2sql.db import Base


class DatabaseRow(Base):
    __tablename__ = "registered_databases"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    url_encrypted: Mapped[str] = mapped_column(Text)
    url_masked: Mapped[str] = mapped_column(Text)
    dialect: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    registered_by: Mapped[str] = mapped_column(String(255))
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    schema_json: Mapped[str] = mapped_column(Text)
    schema_hash: Mapped[str] = mapped_column(String(64))
    refreshed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    account_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    allowed_functions: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
