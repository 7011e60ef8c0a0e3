"""What Teams needs to remember across restarts, in the registry database.

``teams_conversations``: the latest conversation reference of each conversation (a
thread in a channel is a conversation of its own: its id carries ``;messageid=``), the
address a proactive answer is sent to. ``teams_pending``: questions whose answer missed
the turn and is owed as a proactive message; a restarted server answers them again, and
whoever deletes the row first delivers, so each question gets one final reply.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, Engine, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.core.types import Where
from bot.tables import ID_CHARS
from chat2sql import db
from chat2sql.db import Base

PENDING_MAX_AGE = dt.timedelta(hours=1)


class TeamsConversationRow(Base):
    __tablename__ = "teams_conversations"

    conversation_id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    reference: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class TeamsPendingRow(Base):
    __tablename__ = "teams_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(ID_CHARS))
    activity_id: Mapped[str | None] = mapped_column(String(ID_CHARS))
    text: Mapped[str] = mapped_column(Text)
    where: Mapped[str] = mapped_column(Text)  # Where as JSON
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True, kw_only=True)
class Pending:
    """A question owed a proactive answer."""

    id: int
    conversation_id: str
    activity_id: str | None
    text: str
    where: Where


class TeamsStore:
    """Conversation references and owed answers; every method is one short transaction."""

    def __init__(self, *, engine: Engine, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._engine = engine
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def close(self) -> None:
        db.release(self._engine)

    def save_reference(self, conversation_id: str, reference: str) -> None:
        with Session(self._engine) as session:
            row = session.get(TeamsConversationRow, conversation_id)
            if row is None:
                session.add(
                    TeamsConversationRow(conversation_id=conversation_id, reference=reference, updated_at=self._clock())
                )
            else:
                row.reference, row.updated_at = reference, self._clock()
            session.commit()

    def reference(self, conversation_id: str) -> str | None:
        with Session(self._engine) as session:
            row = session.get(TeamsConversationRow, conversation_id)
            return row.reference if row else None

    def add_pending(self, *, conversation_id: str, activity_id: str | None, text: str, where: Where) -> int:
        row = TeamsPendingRow(
            conversation_id=conversation_id,
            activity_id=activity_id,
            text=text,
            where=json.dumps(dataclasses.asdict(where)),
            created_at=self._clock(),
        )
        with Session(self._engine) as session:
            session.add(row)
            session.flush()
            pending_id = row.id
            session.commit()
        return pending_id

    def take_pending(self, pending_id: int) -> bool:
        """True for the one caller that removes the row: that caller delivers the answer."""
        with Session(self._engine) as session:
            result = session.execute(delete(TeamsPendingRow).where(TeamsPendingRow.id == pending_id))
            taken = cast(CursorResult[Any], result).rowcount
            session.commit()
        return bool(taken)

    def pending(self, *, max_age: dt.timedelta = PENDING_MAX_AGE) -> list[Pending]:
        """Owed answers, oldest first; those older than ``max_age`` are dropped on the way."""
        with Session(self._engine) as session:
            session.execute(delete(TeamsPendingRow).where(TeamsPendingRow.created_at < self._clock() - max_age))
            session.commit()
            rows = session.scalars(select(TeamsPendingRow).order_by(TeamsPendingRow.id)).all()
            return [
                Pending(
                    id=r.id,
                    conversation_id=r.conversation_id,
                    activity_id=r.activity_id,
                    text=r.text,
                    where=Where(**json.loads(r.where)),
                )
                for r in rows
            ]
