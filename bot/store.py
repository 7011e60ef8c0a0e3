"""The bot's state, kept in the registry database beside the databases it describes.

Five concerns, one store, because they share a lifetime with the registry: what was asked
and answered (``audit_log``, plus ``feedback`` on those answers), who may query which
database from which channel (``db_access`` and ``db_origin``), each channel's default
database (``channel_defaults``), and the conversation state of the chat platforms: the last
answer in each thread (``bot_threads``, the context of a follow-up) and the deliveries
already taken (``claimed_deliveries``: a platform's retry of the same event answers once).
Every replica of the bot sees the same rows, and the Alembic chain that upgrades the
registry upgrades these tables too.

Access rules, in order: an explicit grant or revoke for the exact (platform, workspace,
channel) wins; otherwise a database registered from chat is open to the workspace it was
registered from and to nobody else; a database registered with the CLI (no origin row) is
open everywhere, because whoever ran the CLI already owns the deployment.

The tables are ``bot.tables``; the command line that reads the audit rows is ``bot.audit``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import (
    Engine,
    delete,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.types import (
    AuditEntry,
    AuditRecord,
    ExampleSource,
    FeedbackEntry,
    Rating,
    ThreadTurn,
    VerifiedExample,
    Where,
)
from bot.tables import (
    ID_CHARS,
    TOKEN_CHARS,
    AuditRow,
    ChannelDefaultRow,
    ClaimedDeliveryRow,
    DbAccessRow,
    DbOriginRow,
    ExampleRow,
    FeedbackRow,
    ThreadRow,
    upsert,
)
from chat2sql import db, messages
from chat2sql.db import Base, upgrade
from chat2sql.errors import UserFacingError
from chat2sql.settings import Settings
from schemas.registry import validate_name

RATINGS = ("up", "down")
DEFAULT_AUDIT_LIMIT = 1000
_AUDIT_FIELDS = tuple(f.name for f in dataclasses.fields(AuditRecord))


class BotStoreError(UserFacingError):
    """A bot-state operation was refused; ``message`` is the sentence a person sees."""


class UnknownAuditEntry(BotStoreError):
    def __init__(self, audit_id: int) -> None:
        super().__init__(audit_id)
        self.audit_id = audit_id

    @property
    def message(self) -> str:
        return messages.no_answer_to_rate(self.audit_id)


class InvalidRating(BotStoreError):
    def __init__(self, rating: str) -> None:
        super().__init__(rating)
        self.rating = rating

    @property
    def message(self) -> str:
        return messages.invalid_rating(self.rating)


# --- the store ----------------------------------------------------------------------------


class BotStore:
    """The bot's rows in the registry database; every method is one short transaction.

    ``clock`` gives the UTC time stamped on new rows (tests pass a fixed one).
    """

    def __init__(self, *, engine: Engine, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._engine = engine
        self._clock = clock or utcnow

    @classmethod
    def open(cls, settings: Settings) -> BotStore:
        """Open the registry database and bring its tables (the bot's too) up to date."""
        engine = db.open_migrated(settings, upgrade)
        return cls(engine=engine)

    @property
    def engine(self) -> Engine:
        """The registry database's engine, shared with the platforms' small stores."""
        return self._engine

    def close(self) -> None:
        db.release(self._engine)

    # --- audit and feedback ---------------------------------------------------------------

    def record(self, record: AuditRecord) -> int:
        """Store one audit row (a single INSERT, committed) and return its id."""
        row = AuditRow(created_at=self._clock(), **{name: getattr(record, name) for name in _AUDIT_FIELDS})
        with Session(self._engine) as session:
            session.add(row)
            session.flush()
            audit_id = row.id  # read before commit: committing expires the row
            session.commit()
        return audit_id

    def audit(self, *, since: dt.datetime | None = None, limit: int = DEFAULT_AUDIT_LIMIT) -> list[AuditEntry]:
        """Audit rows, newest first; ``since`` is inclusive (a naive time is taken as UTC)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = select(AuditRow).order_by(AuditRow.created_at.desc(), AuditRow.id.desc()).limit(limit)
        if since is not None:
            # SQLite keeps times as text without a zone: compare UTC with UTC.
            query = query.where(AuditRow.created_at >= to_utc(since))
        with Session(self._engine) as session:
            return [_audit_entry(row) for row in session.scalars(query)]

    def get(self, audit_id: int) -> AuditEntry | None:
        """One audit row, e.g. to preview an answer later; None if there is no such row."""
        with Session(self._engine) as session:
            row = session.get(AuditRow, audit_id)
            return _audit_entry(row) if row else None

    def set_preview_rows(self, audit_id: int, rows: int) -> None:
        """Note how many rows a preview showed: previews run after the answer was recorded."""
        self._set_preview(audit_id, rows=rows, error=None)

    def set_preview_error(self, audit_id: int, error_kind: str) -> None:
        """Note that the latest preview of an answer failed, and how."""
        self._set_preview(audit_id, rows=None, error=error_kind[:TOKEN_CHARS])

    def _set_preview(self, audit_id: int, *, rows: int | None, error: str | None) -> None:
        with Session(self._engine) as session:
            row = session.get(AuditRow, audit_id)
            if row is None:
                raise UnknownAuditEntry(audit_id)
            row.preview_rows, row.preview_error = rows, error
            session.commit()

    def add_feedback(self, *, audit_id: int, user_id: str, rating: Rating, corrected_sql: str | None = None) -> int:
        """Store a rating of an answer; the audit row must exist (SQLite does not enforce it)."""
        if rating not in RATINGS:
            raise InvalidRating(str(rating))
        row = FeedbackRow(
            audit_id=audit_id,
            created_at=self._clock(),
            user_id=user_id,
            rating=rating,
            corrected_sql=corrected_sql,
        )
        with Session(self._engine) as session:
            if session.get(AuditRow, audit_id) is None:
                raise UnknownAuditEntry(audit_id)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise UnknownAuditEntry(audit_id) from None
            feedback_id = row.id
            session.commit()
        return feedback_id

    def feedback_for(self, audit_id: int) -> list[FeedbackEntry]:
        """Feedback on one answer, oldest first."""
        query = (
            select(FeedbackRow).where(FeedbackRow.audit_id == audit_id).order_by(FeedbackRow.created_at, FeedbackRow.id)
        )
        with Session(self._engine) as session:
            return [_feedback_entry(row) for row in session.scalars(query)]

    def experiment_rows(self, *, since: dt.datetime | None = None) -> list[tuple[AuditEntry, dict[str, int]]]:
        """Audit rows that belong to an A/B arm, each with its feedback counts (up, down, corrected)."""
        query = select(AuditRow).where(AuditRow.arm.is_not(None)).order_by(AuditRow.id)
        if since is not None:
            query = query.where(AuditRow.created_at >= to_utc(since))
        with Session(self._engine) as session:
            entries = [_audit_entry(row) for row in session.scalars(query)]
            counts: dict[int, dict[str, int]] = {e.id: {"up": 0, "down": 0, "corrected": 0} for e in entries}
            if entries:
                feedback = select(FeedbackRow).where(FeedbackRow.audit_id.in_(list(counts)))
                for fb in session.scalars(feedback):
                    counts[fb.audit_id][fb.rating] += 1
                    counts[fb.audit_id]["corrected"] += fb.corrected_sql is not None
        return [(e, counts[e.id]) for e in entries]

    # --- verified examples ---------------------------------------------------------------

    def add_example(
        self,
        *,
        database: str,
        question: str,
        sql: str,
        source: ExampleSource,
        created_by: str,
        schema_hash: str,
        audit_id: int | None = None,
    ) -> int:
        """Keep a verified example; the same question (normalized) again replaces its SQL."""
        validate_name(database)
        key = {"database": database, "question_key": _question_key(question)}
        values: dict[str, Any] = {
            "question": question.strip(),
            "sql": sql.strip(),
            "source": source,
            "audit_id": audit_id,
            "created_by": created_by,
            "created_at": self._clock(),
            "status": "active",
            "reason": None,
            "schema_hash": schema_hash,
        }
        self._upsert(ExampleRow, key, values)
        with Session(self._engine) as session:
            found = session.scalar(select(ExampleRow.id).filter_by(**key))
        assert found is not None
        return found

    def examples(self, database: str) -> list[VerifiedExample]:
        """All examples of a database, active and set aside, oldest first."""
        query = select(ExampleRow).where(ExampleRow.database == database).order_by(ExampleRow.id)
        with Session(self._engine) as session:
            return [_example(row) for row in session.scalars(query)]

    def set_example_status(
        self, example_id: int, *, status: Literal["active", "set_aside"], reason: str | None, schema_hash: str
    ) -> None:
        with Session(self._engine) as session:
            row = session.get(ExampleRow, example_id)
            if row is not None:
                row.status, row.reason, row.schema_hash = status, reason, schema_hash
                session.commit()

    def remove_example(self, example_id: int) -> VerifiedExample | None:
        with Session(self._engine) as session:
            row = session.get(ExampleRow, example_id)
            if row is None:
                return None
            example = _example(row)
            session.delete(row)
            session.commit()
        return example

    # --- access -----------------------------------------------------------------------------

    def set_origin(self, database: str, *, platform: str, workspace: str) -> None:
        """Record that ``database`` was registered from chat in this workspace."""
        validate_name(database)
        self._upsert(DbOriginRow, {"database": database}, {"platform": platform, "workspace": workspace})

    def grant(self, database: str, where: Where) -> None:
        """Open ``database`` to this one channel, whatever its origin says."""
        self._set_access(database, where, allowed=True)

    def revoke(self, database: str, where: Where) -> None:
        """Close ``database`` to this one channel, whatever its origin says."""
        self._set_access(database, where, allowed=False)

    def is_allowed(self, database: str, where: Where) -> bool:
        scope = (
            DbAccessRow.database == database,
            DbAccessRow.platform == where.platform,
            DbAccessRow.workspace == where.workspace,
            DbAccessRow.channel == where.channel,
        )
        with Session(self._engine) as session:
            explicit = session.scalar(select(DbAccessRow.allowed).where(*scope))
            if explicit is not None:
                return bool(explicit)
            origin = session.get(DbOriginRow, database)
        if origin is None:  # registered with the CLI: open everywhere
            return True
        return origin.platform == where.platform and origin.workspace == where.workspace

    def forget(self, database: str) -> None:
        """Drop the origin, access rows, channel defaults and examples of a removed database.

        Audit rows and feedback stay: they are history, and name the database as text.
        """
        with Session(self._engine) as session:
            session.execute(delete(DbOriginRow).where(DbOriginRow.database == database))
            session.execute(delete(DbAccessRow).where(DbAccessRow.database == database))
            session.execute(delete(ChannelDefaultRow).where(ChannelDefaultRow.database == database))
            session.execute(delete(ExampleRow).where(ExampleRow.database == database))
            session.commit()

    # --- channel defaults ---------------------------------------------------------------------

    def set_default(self, where: Where, database: str) -> None:
        """Make ``database`` the one this channel asks when a question names none.

        Access is not checked here: callers check ``is_allowed`` when the default is used,
        so a later revoke takes effect without touching defaults.
        """
        validate_name(database)
        key = {"platform": where.platform, "workspace": where.workspace, "channel": where.channel}
        self._upsert(ChannelDefaultRow, key, {"database": database})

    def default(self, where: Where) -> str | None:
        with Session(self._engine) as session:
            row = session.get(ChannelDefaultRow, (where.platform, where.workspace, where.channel))
            return row.database if row else None

    # --- conversations -------------------------------------------------------------------------

    def remember_turn(self, where: Where, turn: ThreadTurn) -> None:
        """Keep ``turn`` as the context of the next follow-up in ``where.thread`` (no-op outside a thread)."""
        if not where.thread:
            return
        key = {
            "platform": where.platform,
            "workspace": where.workspace,
            "channel": where.channel,
            "thread": where.thread,
        }
        values = {**dataclasses.asdict(turn), "updated_at": self._clock()}
        self._upsert(ThreadRow, key, values)

    def last_turn(self, where: Where) -> ThreadTurn | None:
        if not where.thread:
            return None
        with Session(self._engine) as session:
            row = session.get(ThreadRow, (where.platform, where.workspace, where.channel, where.thread))
            if row is None:
                return None
            return ThreadTurn(database=row.database, question=row.question, sql=row.sql, audit_id=row.audit_id)

    def forget_turn(self, where: Where) -> None:
        """The thread starts over: its next question is no follow-up of the last answer."""
        if not where.thread:
            return
        with Session(self._engine) as session:
            session.execute(
                delete(ThreadRow).where(
                    ThreadRow.platform == where.platform,
                    ThreadRow.workspace == where.workspace,
                    ThreadRow.channel == where.channel,
                    ThreadRow.thread == where.thread,
                )
            )
            session.commit()

    # --- what a user asks most ---------------------------------------------------------------

    def most_used_databases(self, where: Where, *, limit: int = 5) -> list[str]:
        """The databases ``where.user_id`` got answers from (in any channel of the workspace), most first."""
        uses = func.count(AuditRow.id)
        query = (
            select(AuditRow.database)
            .where(
                AuditRow.platform == where.platform,
                AuditRow.workspace == where.workspace,
                AuditRow.user_id == where.user_id,
                AuditRow.database.is_not(None),
                AuditRow.sql.is_not(None),
                AuditRow.error_kind.is_(None),
            )
            .group_by(AuditRow.database)
            .order_by(uses.desc(), func.max(AuditRow.id).desc())
            .limit(limit)
        )
        with Session(self._engine) as session:
            return [name for name in session.scalars(query) if name]

    def shareable_examples(self, database: str, where: Where, *, limit: int = 4) -> list[VerifiedExample]:
        """Active verified examples this user may be shown, newest first: those an admin added
        and those from the user's own questions, never another user's (their channel may be private)."""
        own = (AuditRow.user_id == where.user_id) & (AuditRow.platform == where.platform)
        query = (
            select(ExampleRow)
            .outerjoin(AuditRow, AuditRow.id == ExampleRow.audit_id)
            .where(
                ExampleRow.database == database,
                ExampleRow.status == "active",
                (ExampleRow.source == "admin") | own,
            )
            .order_by(ExampleRow.id.desc())
            .limit(limit)
        )
        with Session(self._engine) as session:
            return [_example(row) for row in session.scalars(query)]

    def claim(self, key: str, *, keep: dt.timedelta = dt.timedelta(days=1)) -> bool:
        """True the first time ``key`` is claimed, False for every repeat (across replicas):
        a platform's retry of a delivery must not produce a second answer. Claims older than
        ``keep`` are deleted on the way."""
        now = self._clock()
        with Session(self._engine) as session:
            session.execute(delete(ClaimedDeliveryRow).where(ClaimedDeliveryRow.claimed_at < now - keep))
            session.add(ClaimedDeliveryRow(key=key[:ID_CHARS], claimed_at=now))
            try:
                session.commit()
            except IntegrityError:
                return False
        return True

    # --- helpers ------------------------------------------------------------------------------

    def _set_access(self, database: str, where: Where, *, allowed: bool) -> None:
        validate_name(database)
        key = {
            "database": database,
            "platform": where.platform,
            "workspace": where.workspace,
            "channel": where.channel,
        }
        values: dict[str, Any] = {
            "allowed": allowed,
            "updated_by": where.user_id,
            "updated_at": self._clock(),
        }
        self._upsert(DbAccessRow, key, values)

    def _upsert(self, model: type[Base], key: dict[str, Any], values: dict[str, Any]) -> None:
        upsert(self._engine, model, key, values)


def _question_key(question: str) -> str:
    return " ".join(question.lower().split()).rstrip("?!. ")[:ID_CHARS]


def _example(row: ExampleRow) -> VerifiedExample:
    return VerifiedExample(
        id=row.id,
        database=row.database,
        question=row.question,
        sql=row.sql,
        source=row.source,
        status="active" if row.status == "active" else "set_aside",
        reason=row.reason,
        schema_hash=row.schema_hash,
        created_by=row.created_by,
    )


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_utc(value: dt.datetime) -> dt.datetime:
    """UTC, whatever came in: SQLite hands back naive times (we only write UTC) and
    PostgreSQL hands back the session's time zone."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _audit_entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        created_at=to_utc(row.created_at),
        **{name: getattr(row, name) for name in _AUDIT_FIELDS},
    )


def _feedback_entry(row: FeedbackRow) -> FeedbackEntry:
    return FeedbackEntry(
        id=row.id,
        audit_id=row.audit_id,
        created_at=to_utc(row.created_at),
        user_id=row.user_id,
        rating="up" if row.rating == "up" else "down",
        corrected_sql=row.corrected_sql,
    )
