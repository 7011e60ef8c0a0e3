"""The core's collaborators, as the core sees them: small async interfaces.

``Catalog`` is the registry's read side (what a question needs: the databases, their
glossaries and value indexes, where to run a read-only preview); ``BotState`` is the bot's
own rows (audit, feedback, examples, access, defaults, threads, delivery claims). Each has
the real implementation over the registry database (``bot.state``: every call runs off the
event loop) and an in-memory one (``bot.core.memory``) that the contract tests hold to the
same behaviour. The inference client's interface is ``inference.client.InferenceClient``.

The admin commands write to the registry itself (register, refresh, glossary edits): they
take the real ``schemas.registry.Registry`` through ``bot.core.admin.AdminDesk``.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Protocol

from bot.core.types import AuditEntry, AuditRecord, ExampleSource, Rating, ThreadTurn, VerifiedExample, Where
from schemas.glossary import GlossaryEntry
from schemas.registry import RegisteredDatabase
from schemas.values import ValueIndex

CLAIM_KEEP = dt.timedelta(days=1)


class Catalog(Protocol):
    """The registered databases, read-only."""

    async def names(self) -> tuple[str, ...]: ...

    async def get(self, name: str) -> RegisteredDatabase:
        """The entry; ``errors.UnknownDatabase`` (listing the known names) when there is none."""
        ...

    async def entries(self) -> list[RegisteredDatabase]: ...

    async def glossary(self, name: str) -> tuple[GlossaryEntry, ...]: ...

    async def value_index(self, name: str) -> ValueIndex | None: ...

    async def connection_url(self, name: str) -> str:
        """The full URL, password included: only ever handed to a read-only runner."""
        ...

    async def close(self) -> None: ...


class BotState(Protocol):
    """The bot's rows; every method is one short transaction."""

    # audit and feedback
    async def record(self, record: AuditRecord) -> int: ...

    async def get(self, audit_id: int) -> AuditEntry | None: ...

    async def set_preview_rows(self, audit_id: int, rows: int) -> None: ...

    async def set_preview_error(self, audit_id: int, error_kind: str) -> None: ...

    async def add_feedback(
        self, *, audit_id: int, user_id: str, rating: Rating, corrected_sql: str | None = None
    ) -> int:
        """``UnknownAuditEntry``, ``InvalidRating`` (``bot.store``) when refused."""
        ...

    # verified examples
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
    ) -> int: ...

    async def examples(self, database: str) -> list[VerifiedExample]: ...

    async def set_example_status(
        self, example_id: int, *, status: Literal["active", "set_aside"], reason: str | None, schema_hash: str
    ) -> None: ...

    async def remove_example(self, example_id: int) -> VerifiedExample | None: ...

    async def shareable_examples(self, database: str, where: Where, *, limit: int = 4) -> list[VerifiedExample]: ...

    async def most_used_databases(self, where: Where, *, limit: int = 5) -> list[str]: ...

    # access and defaults
    async def set_origin(self, database: str, *, platform: str, workspace: str) -> None: ...

    async def grant(self, database: str, where: Where) -> None: ...

    async def revoke(self, database: str, where: Where) -> None: ...

    async def is_allowed(self, database: str, where: Where) -> bool: ...

    async def forget(self, database: str) -> None: ...

    async def set_default(self, where: Where, database: str) -> None: ...

    async def default(self, where: Where) -> str | None: ...

    # conversations and deliveries
    async def remember_turn(self, where: Where, turn: ThreadTurn) -> None: ...

    async def last_turn(self, where: Where) -> ThreadTurn | None: ...

    async def forget_turn(self, where: Where) -> None: ...

    async def claim(self, key: str, *, keep: dt.timedelta = CLAIM_KEEP) -> bool: ...

    async def close(self) -> None: ...
