"""Where an assistant thread's context lives: the channel the user was viewing when they
opened chat2sql in Slack's assistant panel (``assistant_thread_started``), updated as they
move (``assistant_thread_context_changed``).

Bolt's default store keeps the context in the metadata of the bot's first reply, read back
with ``conversations.replies`` on every message; this one keeps it in the registry database,
one short transaction per call in a worker thread, so a message costs no extra Slack call
and every replica sees the same context.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable

from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import AsyncAssistantThreadContextStore
from sqlalchemy import DateTime, Engine, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.tables import ID_CHARS, upsert
from chat2sql.db import Base

MAX_CONTEXT_CHARS = 4000  # channel_id, team_id, enterprise_id: far less in practice


class AssistantThreadRow(Base):
    __tablename__ = "slack_assistant_threads"

    channel_id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    thread_ts: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    context: Mapped[str] = mapped_column(Text)  # the event's context object, as JSON
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ThreadContextStore(AsyncAssistantThreadContextStore):
    def __init__(self, *, engine: Engine, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._engine = engine
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        await asyncio.to_thread(self._save, channel_id, thread_ts, context)

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        return await asyncio.to_thread(self._find, channel_id, thread_ts)

    def _save(self, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        kept = {k: str(v) for k, v in context.items() if isinstance(v, str | int) and k.endswith("_id")}
        key = {"channel_id": channel_id[:ID_CHARS], "thread_ts": thread_ts[:ID_CHARS]}
        values = {"context": json.dumps(kept)[:MAX_CONTEXT_CHARS], "updated_at": self._clock()}
        upsert(self._engine, AssistantThreadRow, key, values)

    def _find(self, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        with Session(self._engine) as session:
            row = session.get(AssistantThreadRow, (channel_id[:ID_CHARS], thread_ts[:ID_CHARS]))
            if row is None:
                return None
            try:
                stored = json.loads(row.context)
            except ValueError:
                return None
        if not isinstance(stored, dict) or not stored.get("channel_id"):
            return None
        return AssistantThreadContext(stored)
