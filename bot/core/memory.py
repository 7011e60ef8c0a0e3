"""In-memory ``Catalog`` and ``BotState`` (``bot.core.ports``): the core with no database of
its own, for tests and tools. ``tests/test_ports.py`` holds them to the behaviour of the real
ones (``bot.state``), rule for rule: access, defaults, threads, examples and claims."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Literal

from bot.core.ports import CLAIM_KEEP
from bot.core.types import AuditEntry, AuditRecord, ExampleSource, Rating, ThreadTurn, VerifiedExample, Where
from bot.store import RATINGS, InvalidRating, UnknownAuditEntry
from chat2sql import errors
from schemas.glossary import GlossaryEntry
from schemas.registry import RegisteredDatabase
from schemas.values import ValueIndex


class MemoryCatalog:
    """Registered databases held in a dict; ``urls`` gives each one's connection URL."""

    def __init__(
        self,
        entries: Iterable[RegisteredDatabase] = (),
        *,
        urls: dict[str, str] | None = None,
        glossary: dict[str, tuple[GlossaryEntry, ...]] | None = None,
        values: dict[str, ValueIndex] | None = None,
    ) -> None:
        self._entries = {e.name: e for e in entries}
        self._urls = dict(urls or {})
        self._glossary = dict(glossary or {})
        self._values = dict(values or {})

    async def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    async def get(self, name: str) -> RegisteredDatabase:
        try:
            return self._entries[name]
        except KeyError:
            raise errors.UnknownDatabase(name, tuple(sorted(self._entries))) from None

    async def entries(self) -> list[RegisteredDatabase]:
        return [self._entries[name] for name in sorted(self._entries)]

    async def glossary(self, name: str) -> tuple[GlossaryEntry, ...]:
        return self._glossary.get(name, ())

    async def value_index(self, name: str) -> ValueIndex | None:
        return self._values.get(name)

    async def connection_url(self, name: str) -> str:
        await self.get(name)
        return self._urls[name]

    async def close(self) -> None:
        return None


def _channel(where: Where) -> tuple[str, str, str]:
    return (where.platform, where.workspace, where.channel)


def _thread(where: Where) -> tuple[str, str, str, str | None]:
    return (*_channel(where), where.thread)


def _question_key(question: str) -> str:
    return " ".join(question.lower().split()).rstrip("?!. ")


class MemoryState:
    """The bot's rows in dicts and lists, one process only."""

    def __init__(self, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.audit: list[AuditEntry] = []
        self.feedback: list[tuple[int, str, Rating, str | None]] = []
        self._examples: dict[int, VerifiedExample] = {}
        self._example_keys: dict[tuple[str, str], int] = {}
        self._example_audit: dict[int, int | None] = {}
        self._origins: dict[str, tuple[str, str]] = {}
        self._access: dict[tuple[str, str, str, str], bool] = {}
        self._defaults: dict[tuple[str, str, str], str] = {}
        self._turns: dict[tuple[str, str, str, str | None], ThreadTurn] = {}
        self._claims: dict[str, dt.datetime] = {}

    # --- audit and feedback ---------------------------------------------------------------

    async def record(self, record: AuditRecord) -> int:
        fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(AuditRecord)}
        self.audit.append(AuditEntry(id=len(self.audit) + 1, created_at=self._clock(), **fields))
        return len(self.audit)

    async def get(self, audit_id: int) -> AuditEntry | None:
        return _entry(self.audit, audit_id)

    async def set_preview_rows(self, audit_id: int, rows: int) -> None:
        self._set(audit_id, preview_rows=rows, preview_error=None)

    async def set_preview_error(self, audit_id: int, error_kind: str) -> None:
        self._set(audit_id, preview_rows=None, preview_error=error_kind)

    def _set(self, audit_id: int, **fields: object) -> None:
        if _entry(self.audit, audit_id) is None:
            raise UnknownAuditEntry(audit_id)
        self.audit[audit_id - 1] = dataclasses.replace(self.audit[audit_id - 1], **fields)  # type: ignore[arg-type]

    async def add_feedback(
        self, *, audit_id: int, user_id: str, rating: Rating, corrected_sql: str | None = None
    ) -> int:
        if rating not in RATINGS:
            raise InvalidRating(str(rating))
        if await self.get(audit_id) is None:
            raise UnknownAuditEntry(audit_id)
        self.feedback.append((audit_id, user_id, rating, corrected_sql))
        return len(self.feedback)

    # --- verified examples ----------------------------------------------------------------

    async def add_example(
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
        key = (database, _question_key(question))
        example_id = self._example_keys.get(key) or max(self._examples, default=0) + 1
        self._example_keys[key] = example_id
        self._example_audit[example_id] = audit_id
        self._examples[example_id] = VerifiedExample(
            id=example_id,
            database=database,
            question=question.strip(),
            sql=sql.strip(),
            source=source,
            status="active",
            reason=None,
            schema_hash=schema_hash,
            created_by=created_by,
        )
        return example_id

    async def examples(self, database: str) -> list[VerifiedExample]:
        return [e for _, e in sorted(self._examples.items()) if e.database == database]

    async def set_example_status(
        self, example_id: int, *, status: Literal["active", "set_aside"], reason: str | None, schema_hash: str
    ) -> None:
        if example_id in self._examples:
            self._examples[example_id] = dataclasses.replace(
                self._examples[example_id], status=status, reason=reason, schema_hash=schema_hash
            )

    async def remove_example(self, example_id: int) -> VerifiedExample | None:
        removed = self._examples.pop(example_id, None)
        if removed is not None:
            self._example_keys = {k: v for k, v in self._example_keys.items() if v != example_id}
        return removed

    async def shareable_examples(self, database: str, where: Where, *, limit: int = 4) -> list[VerifiedExample]:
        def own(example_id: int) -> bool:
            entry = _entry(self.audit, self._example_audit.get(example_id))
            return entry is not None and entry.user_id == where.user_id and entry.platform == where.platform

        found = [
            e
            for example_id, e in sorted(self._examples.items(), reverse=True)
            if e.database == database and e.status == "active" and (e.source == "admin" or own(example_id))
        ]
        return found[:limit]

    async def most_used_databases(self, where: Where, *, limit: int = 5) -> list[str]:
        answered = [
            e
            for e in self.audit
            if (e.platform, e.workspace, e.user_id) == (where.platform, where.workspace, where.user_id)
            and e.database
            and e.sql is not None
            and e.error_kind is None
        ]
        uses = Counter(e.database for e in answered)
        last = {e.database: e.id for e in answered}
        ranked = sorted(uses, key=lambda name: (-uses[name], -last[name]))
        return [name for name in ranked if name][:limit]

    # --- access and defaults ---------------------------------------------------------------

    async def set_origin(self, database: str, *, platform: str, workspace: str) -> None:
        self._origins[database] = (platform, workspace)

    async def grant(self, database: str, where: Where) -> None:
        self._access[(database, *_channel(where))] = True

    async def revoke(self, database: str, where: Where) -> None:
        self._access[(database, *_channel(where))] = False

    async def is_allowed(self, database: str, where: Where) -> bool:
        explicit = self._access.get((database, *_channel(where)))
        if explicit is not None:
            return explicit
        origin = self._origins.get(database)
        return origin is None or origin == (where.platform, where.workspace)

    async def forget(self, database: str) -> None:
        self._origins.pop(database, None)
        self._access = {k: v for k, v in self._access.items() if k[0] != database}
        self._defaults = {k: v for k, v in self._defaults.items() if v != database}
        for example in [e for e in self._examples.values() if e.database == database]:
            await self.remove_example(example.id)

    async def set_default(self, where: Where, database: str) -> None:
        self._defaults[_channel(where)] = database

    async def default(self, where: Where) -> str | None:
        return self._defaults.get(_channel(where))

    # --- conversations and deliveries --------------------------------------------------------

    async def remember_turn(self, where: Where, turn: ThreadTurn) -> None:
        if where.thread:
            self._turns[_thread(where)] = turn

    async def last_turn(self, where: Where) -> ThreadTurn | None:
        return self._turns.get(_thread(where)) if where.thread else None

    async def forget_turn(self, where: Where) -> None:
        self._turns.pop(_thread(where), None)

    async def claim(self, key: str, *, keep: dt.timedelta = CLAIM_KEEP) -> bool:
        now = self._clock()
        self._claims = {k: at for k, at in self._claims.items() if at >= now - keep}
        if key in self._claims:
            return False
        self._claims[key] = now
        return True

    async def close(self) -> None:
        return None


def _entry(audit: list[AuditEntry], audit_id: int | None) -> AuditEntry | None:
    return audit[audit_id - 1] if audit_id is not None and 0 < audit_id <= len(audit) else None
