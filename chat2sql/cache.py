"""The response cache: the same question about the same schema need not reach the model twice.

Keys are ``cache_key(database, schema_hash, adapter, prompt_format, normalize_question(q))``,
so a refreshed schema, another adapter or another prompt format never sees an old answer.
``InMemoryCache`` serves one process (TTL plus an LRU bound); ``RedisCache`` is shared by
every replica.

A cache is an optimisation, so a broken one must never break an answer: ``RedisCache.get``
and ``set`` fail open (a miss, a skipped write) and log the outage once, not once per
request. Configuration mistakes fail fast instead: a malformed URL raises
``CacheUnavailable`` when the cache is built, and ``RedisCache.ping`` raises it for a
start-up or readiness check.

>>> import asyncio
>>> cache = InMemoryCache()
>>> key = cache_key("shop", "hash", "seed", "schema", normalize_question("How many  customers?"))
>>> asyncio.run(cache.set(key, "SELECT COUNT(*) FROM customers", ttl_s=60))
>>> asyncio.run(cache.get(cache_key("shop", "hash", "seed", "schema", "how many customers")))
'SELECT COUNT(*) FROM customers'
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.exceptions import RedisError

from chat2sql import messages
from chat2sql.errors import UserFacingError
from chat2sql.redact import redact
from chat2sql.redisconn import connect, password_of

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
DEFAULT_PREFIX = "chat2sql:cache:"
MS_PER_S = 1000
# A cache lookup sits in front of every question: a dead server must cost little time.
CONNECT_TIMEOUT_S = 1.0
# Chat clients add these after a question; they never change what is asked.
_TRAILING_PUNCTUATION = "?!.？！。"


class CacheUnavailable(UserFacingError):
    """The shared cache cannot be used; ``detail`` is redacted (no URL, no password)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def message(self) -> str:
        return messages.CACHE_UNAVAILABLE


class ResponseCache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, *, ttl_s: float) -> None: ...

    async def close(self) -> None: ...


def make_cache(redis_url: str | None) -> ResponseCache:
    """Redis when a URL is configured (several replicas), otherwise this process's memory."""
    if redis_url:
        return RedisCache(url=redis_url)
    return InMemoryCache()


def cache_key(*parts: str) -> str:
    """A stable key for ``parts``: the sha256 of their JSON array, so no two lists collide.

    >>> cache_key("ab", "c") == cache_key("a", "bc")
    False
    >>> cache_key("shop", "how many customers")[:16]
    '83e8a6736bb237ed'
    """
    encoded = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def normalize_question(text: str) -> str:
    """The question as the cache compares it: case-folded, whitespace collapsed, no trailing ?!.

    Nothing else changes: digits, quotes and inner punctuation can change the SQL.

    >>> normalize_question("  How many\\tcustomers ?! ")
    'how many customers'
    """
    collapsed = " ".join(text.casefold().split())
    return collapsed.rstrip(_TRAILING_PUNCTUATION + " ")


class InMemoryCache:
    """Entries in an ordered dict, for one process.

    asyncio-safe because no method awaits between reading and writing. Memory is bounded:
    past ``max_entries`` the least recently used entry goes, and expired entries are dropped
    when they are met (on ``get``, or at the old end of the order on ``set``).
    """

    def __init__(self, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: str, *, ttl_s: float) -> None:
        _check_ttl(ttl_s)
        now = self._clock()
        self._entries.pop(key, None)
        self._entries[key] = (value, now + ttl_s)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        while self._entries:  # cheap tidying: expired entries at the least recently used end
            _, expires_at = next(iter(self._entries.values()))
            if expires_at > now:
                break
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """One Redis string per key (``SET ... PX``), shared by every replica using the prefix.

    Redis does the expiry; bound its memory with the server's ``maxmemory`` and an LRU
    policy. ``get`` and ``set`` fail open: an unreachable server is a miss and a skipped
    write, logged once when it starts failing and once when it recovers.
    """

    def __init__(self, *, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self._prefix = prefix
        self._password = password_of(url)
        self._failing = False
        try:
            self._client = connect(url, timeout_s=CONNECT_TIMEOUT_S)
        except ValueError:
            raise CacheUnavailable("the configured Redis URL is not valid") from None

    async def get(self, key: str) -> str | None:
        try:
            value = await self._client.get(self._prefix + key)
        except RedisError as exc:
            self._failed("get", exc)
            return None
        self._succeeded()
        return None if value is None else str(value)

    async def set(self, key: str, value: str, *, ttl_s: float) -> None:
        _check_ttl(ttl_s)
        ttl_ms = max(1, math.ceil(ttl_s * MS_PER_S))
        try:
            await self._client.set(self._prefix + key, value, px=ttl_ms)
        except RedisError as exc:
            self._failed("set", exc)
            return
        self._succeeded()

    async def ping(self) -> None:
        """Raise ``CacheUnavailable`` unless the server answers (for start-up checks)."""
        try:
            await self._client.ping()
        except RedisError as exc:
            raise CacheUnavailable(self._reason(exc)) from None

    async def close(self) -> None:
        await self._client.aclose()

    def _failed(self, operation: str, exc: RedisError) -> None:
        fields = {"cache": "redis", "operation": operation, "reason": self._reason(exc)}
        if not self._failing:
            self._failing = True
            log.warning("response cache unavailable; answering without it", extra={"fields": fields})
        else:
            log.debug("response cache still unavailable", extra={"fields": fields})

    def _succeeded(self) -> None:
        if self._failing:
            self._failing = False
            log.info("response cache reachable again", extra={"fields": {"cache": "redis"}})

    def _reason(self, exc: RedisError) -> str:
        text = redact(str(exc), self._password).strip()
        line = text.splitlines()[0] if text else ""
        return f"{type(exc).__name__}: {line}"[:300]


def _check_ttl(ttl_s: float) -> None:
    if not (ttl_s > 0 and math.isfinite(ttl_s)):
        raise ValueError(f"ttl_s must be a positive number of seconds, not {ttl_s}")
