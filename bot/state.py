"""The core's collaborators over the registry database (``bot.core.ports``): the bot's rows
(``BotStore``) and the registry's read side (``schemas.registry.Registry``), every call in a
worker thread so that a chat server's event loop stays free to acknowledge other requests."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Literal

from bot.core.access import Admins
from bot.core.admin import AdminDesk
from bot.core.assistant import Assistant
from bot.core.config import AssistantConfig, Services
from bot.core.ports import CLAIM_KEEP
from bot.core.types import AuditEntry, AuditRecord, ExampleSource, Rating, ThreadTurn, VerifiedExample, Where
from bot.metrics import BotMetrics
from bot.store import BotStore
from chat2sql.cache import ResponseCache
from chat2sql.ratelimit import RateLimiter
from chat2sql.tracing import NoopTracer, Tracer
from inference.client import InferenceClient
from schemas.glossary import GlossaryEntry
from schemas.registry import RegisteredDatabase, Registry
from schemas.values import ValueIndex

_off = asyncio.to_thread


def assistant_over(
    *,
    registry: Registry,
    store: BotStore,
    client: InferenceClient,
    limiter: RateLimiter,
    cache: ResponseCache,
    admins: Admins,
    config: AssistantConfig,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    metrics: BotMetrics | None = None,
    tracer: Tracer | None = None,
) -> Assistant:
    """The assistant over the registry database: its registry and the bot's store."""
    state = StoreState(store)
    services = Services(
        catalog=RegistryCatalog(registry),
        state=state,
        client=client,
        limiter=limiter,
        cache=cache,
        admins=admins,
        metrics=metrics or BotMetrics(),
        tracer=tracer or NoopTracer(),
        sleep=sleep,
    )
    assistant = Assistant(services, config, desk=AdminDesk(registry=registry, state=state))
    assistant.registry, assistant.store = registry, store
    return assistant


class RegistryCatalog:
    """``Catalog`` over the registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def names(self) -> tuple[str, ...]:
        return await _off(self.registry.names)

    async def get(self, name: str) -> RegisteredDatabase:
        return await _off(self.registry.get, name)

    async def entries(self) -> list[RegisteredDatabase]:
        return await _off(self.registry.list)

    async def glossary(self, name: str) -> tuple[GlossaryEntry, ...]:
        return await _off(self.registry.glossary.entries, name)

    async def value_index(self, name: str) -> ValueIndex | None:
        return await _off(self.registry.values.index, name)

    async def connection_url(self, name: str) -> str:
        return await _off(self.registry.connection_url, name)

    async def close(self) -> None:
        await _off(self.registry.close)


class StoreState:
    """``BotState`` over ``BotStore``."""

    def __init__(self, store: BotStore) -> None:
        self.store = store

    async def record(self, record: AuditRecord) -> int:
        return await _off(self.store.record, record)

    async def get(self, audit_id: int) -> AuditEntry | None:
        return await _off(self.store.get, audit_id)

    async def set_preview_rows(self, audit_id: int, rows: int) -> None:
        await _off(self.store.set_preview_rows, audit_id, rows)

    async def set_preview_error(self, audit_id: int, error_kind: str) -> None:
        await _off(self.store.set_preview_error, audit_id, error_kind)

    async def add_feedback(
        self, *, audit_id: int, user_id: str, rating: Rating, corrected_sql: str | None = None
    ) -> int:
        return await _off(
            lambda: self.store.add_feedback(
                audit_id=audit_id, user_id=user_id, rating=rating, corrected_sql=corrected_sql
            )
        )

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
        return await _off(
            lambda: self.store.add_example(
                database=database,
                question=question,
                sql=sql,
                source=source,
                created_by=created_by,
                schema_hash=schema_hash,
                audit_id=audit_id,
            )
        )

    async def examples(self, database: str) -> list[VerifiedExample]:
        return await _off(self.store.examples, database)

    async def set_example_status(
        self, example_id: int, *, status: Literal["active", "set_aside"], reason: str | None, schema_hash: str
    ) -> None:
        await _off(
            lambda: self.store.set_example_status(example_id, status=status, reason=reason, schema_hash=schema_hash)
        )

    async def remove_example(self, example_id: int) -> VerifiedExample | None:
        return await _off(self.store.remove_example, example_id)

    async def shareable_examples(self, database: str, where: Where, *, limit: int = 4) -> list[VerifiedExample]:
        return await _off(lambda: self.store.shareable_examples(database, where, limit=limit))

    async def most_used_databases(self, where: Where, *, limit: int = 5) -> list[str]:
        return await _off(lambda: self.store.most_used_databases(where, limit=limit))

    async def set_origin(self, database: str, *, platform: str, workspace: str) -> None:
        await _off(lambda: self.store.set_origin(database, platform=platform, workspace=workspace))

    async def grant(self, database: str, where: Where) -> None:
        await _off(self.store.grant, database, where)

    async def revoke(self, database: str, where: Where) -> None:
        await _off(self.store.revoke, database, where)

    async def is_allowed(self, database: str, where: Where) -> bool:
        return await _off(self.store.is_allowed, database, where)

    async def forget(self, database: str) -> None:
        await _off(self.store.forget, database)

    async def set_default(self, where: Where, database: str) -> None:
        await _off(self.store.set_default, where, database)

    async def default(self, where: Where) -> str | None:
        return await _off(self.store.default, where)

    async def remember_turn(self, where: Where, turn: ThreadTurn) -> None:
        await _off(self.store.remember_turn, where, turn)

    async def last_turn(self, where: Where) -> ThreadTurn | None:
        return await _off(self.store.last_turn, where)

    async def forget_turn(self, where: Where) -> None:
        await _off(self.store.forget_turn, where)

    async def claim(self, key: str, *, keep: dt.timedelta = CLAIM_KEEP) -> bool:
        return await _off(lambda: self.store.claim(key, keep=keep))

    async def close(self) -> None:
        await _off(self.store.close)
