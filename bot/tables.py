"""The bot's tables in the registry database (``chat2sql.db.Base``), and the portable upsert
its stores write with. ``bot.store.BotStore`` reads and writes them; the Slack and Teams stores
keep their own small tables beside them (``bot.slack.threads``, ``bot.teams.store``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from chat2sql.db import Base

# Slack ids are short; Teams conversation ids can run past a hundred characters.
ID_CHARS = 512
PLATFORM_CHARS = 32
DATABASE_CHARS = 63  # registered_databases.name
TOKEN_CHARS = 64  # guard rule names, error kinds, adapter names, trace ids

_Row = TypeVar("_Row", bound=Base)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    platform: Mapped[str] = mapped_column(String(PLATFORM_CHARS))
    workspace: Mapped[str] = mapped_column(String(ID_CHARS))
    channel: Mapped[str] = mapped_column(String(ID_CHARS))
    user_id: Mapped[str] = mapped_column(String(ID_CHARS))
    database: Mapped[str | None] = mapped_column(String(DATABASE_CHARS))
    question: Mapped[str] = mapped_column(Text)
    sql: Mapped[str | None] = mapped_column(Text)
    guard_verdict: Mapped[str | None] = mapped_column(String(TOKEN_CHARS))
    preview_rows: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    cache_hit: Mapped[bool] = mapped_column(Boolean)
    error_kind: Mapped[str | None] = mapped_column(String(TOKEN_CHARS))
    adapter: Mapped[str | None] = mapped_column(String(TOKEN_CHARS))
    trace_id: Mapped[str] = mapped_column(String(TOKEN_CHARS))
    arm: Mapped[str | None] = mapped_column(String(TOKEN_CHARS))
    preview_error: Mapped[str | None] = mapped_column(String(TOKEN_CHARS))


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint("rating IN ('up', 'down')", name="ck_feedback_rating"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    user_id: Mapped[str] = mapped_column(String(ID_CHARS))
    rating: Mapped[str] = mapped_column(String(4))
    corrected_sql: Mapped[str | None] = mapped_column(Text)


class DbAccessRow(Base):
    __tablename__ = "db_access"
    __table_args__ = (UniqueConstraint("database", "platform", "workspace", "channel", name="uq_db_access_scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    database: Mapped[str] = mapped_column(String(DATABASE_CHARS))
    platform: Mapped[str] = mapped_column(String(PLATFORM_CHARS))
    workspace: Mapped[str] = mapped_column(String(ID_CHARS))
    channel: Mapped[str] = mapped_column(String(ID_CHARS))
    allowed: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(ID_CHARS))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class DbOriginRow(Base):
    """No foreign key to ``registered_databases``: the registry removes its row on its own,
    and ``BotStore.forget`` then clears what the bot kept about that name."""

    __tablename__ = "db_origin"

    database: Mapped[str] = mapped_column(String(DATABASE_CHARS), primary_key=True)
    platform: Mapped[str] = mapped_column(String(PLATFORM_CHARS))
    workspace: Mapped[str] = mapped_column(String(ID_CHARS))


class ChannelDefaultRow(Base):
    __tablename__ = "channel_defaults"

    platform: Mapped[str] = mapped_column(String(PLATFORM_CHARS), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    channel: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    database: Mapped[str] = mapped_column(String(DATABASE_CHARS))


class ThreadRow(Base):
    __tablename__ = "bot_threads"

    platform: Mapped[str] = mapped_column(String(PLATFORM_CHARS), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    channel: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    thread: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    database: Mapped[str] = mapped_column(String(DATABASE_CHARS))
    question: Mapped[str] = mapped_column(Text)
    sql: Mapped[str] = mapped_column(Text)
    audit_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ClaimedDeliveryRow(Base):
    __tablename__ = "claimed_deliveries"

    key: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class ExampleRow(Base):
    __tablename__ = "verified_examples"
    __table_args__ = (
        UniqueConstraint("database", "question_key", name="uq_verified_examples_question"),
        CheckConstraint("status IN ('active', 'set_aside')", name="ck_verified_examples_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    database: Mapped[str] = mapped_column(String(DATABASE_CHARS), index=True)
    question: Mapped[str] = mapped_column(Text)
    question_key: Mapped[str] = mapped_column(String(ID_CHARS))
    sql: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    audit_id: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(ID_CHARS))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    schema_hash: Mapped[str] = mapped_column(String(64))


def upsert(engine: Engine, model: type[_Row], key: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert or update the row identified by ``key``, portably (SQLite and PostgreSQL).

    Two writers inserting the same key at once: the loser's INSERT violates the key,
    and its second attempt finds the row and updates it.
    """
    for attempt in range(2):
        with Session(engine) as session:
            row = session.scalar(select(model).filter_by(**key))
            if row is None:
                session.add(model(**key, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
            try:
                session.commit()
                return
            except IntegrityError:
                if attempt:
                    raise
