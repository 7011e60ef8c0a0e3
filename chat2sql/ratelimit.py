"""Token-bucket rate limits, shared by the inference worker (per API key) and the bot (per user).

A bucket holds at most ``burst`` tokens and refills at ``per_minute / 60`` tokens a second;
a request takes ``cost`` tokens or is refused with the seconds until it could pass.
``InMemoryRateLimiter`` serves one process; ``RedisRateLimiter`` lets every replica share
one bucket per key. Both raise instead of guessing: whether a broken limiter fails open or
closed is the caller's decision.

>>> import asyncio
>>> limiter = InMemoryRateLimiter(clock=lambda: 0.0)
>>> [asyncio.run(limiter.acquire("k", Limit(60, 2))).allowed for _ in range(3)]
[True, True, False]
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from chat2sql import messages
from chat2sql.errors import UserFacingError
from chat2sql.redact import redact
from chat2sql.redisconn import connect, password_of

SECONDS_PER_MINUTE = 60
MAX_BUCKETS = 100_000
DEFAULT_PREFIX = "chat2sql:rl:"
# A rate-limit check sits in front of every request: it must fail fast, not stall it.
CONNECT_TIMEOUT_S = 2.0
# Bucket hashes outlive the moment they are full again by this much (then absent == full).
TTL_SLACK_MS = 1000


@dataclass(frozen=True)
class Limit:
    """``burst`` is the bucket's capacity; it refills at ``per_minute / 60`` tokens a second."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_minute > 0 or self.burst < 1:
            raise ValueError(f"a limit needs per_minute > 0 and burst >= 1, not {self}")

    @property
    def per_second(self) -> float:
        return self.per_minute / SECONDS_PER_MINUTE


TIERS: dict[str, Limit] = {
    "standard": Limit(60, 100),
    "premium": Limit(300, 500),
    "internal": Limit(1000, 2000),
}


@dataclass(frozen=True)
class Decision:
    """``retry_after_s`` is 0 when allowed, otherwise the seconds until ``cost`` tokens exist."""

    allowed: bool
    remaining: int
    retry_after_s: float


class RateLimiterUnavailable(UserFacingError):
    """The shared limiter could not be asked; ``detail`` is redacted (no password)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def message(self) -> str:
        return messages.RATE_LIMITER_UNAVAILABLE


class RateLimiter(Protocol):
    async def acquire(self, key: str, limit: Limit, cost: int = 1) -> Decision: ...

    async def close(self) -> None: ...


def make_rate_limiter(redis_url: str | None) -> RateLimiter:
    """Redis when a URL is configured (several replicas), otherwise this process's memory."""
    if redis_url:
        return RedisRateLimiter(url=redis_url)
    return InMemoryRateLimiter()


class InMemoryRateLimiter:
    """Buckets in a dict, for one process.

    asyncio-safe because ``acquire`` never awaits between reading and writing a bucket.
    Memory is bounded: buckets that have refilled are dropped (absent means full), and past
    ``max_buckets`` the least recently used one goes, which at worst hands that idle key a
    fresh burst.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be at least 1")
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def acquire(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        _check_cost(limit, cost)
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        self._evict(now)
        if bucket is None:
            bucket = _Bucket(tokens=float(limit.burst), updated=now)
        bucket.tokens, bucket.updated, decision = _take(bucket.tokens, bucket.updated, now, limit, cost)
        bucket.full_at = bucket.updated + (limit.burst - bucket.tokens) / limit.per_second
        self._buckets[key] = bucket  # most recently used: the end of the order
        return decision

    async def close(self) -> None:
        self._buckets.clear()

    def _evict(self, now: float) -> None:
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if oldest.full_at > now and len(self._buckets) < self._max_buckets:
                return
            self._buckets.popitem(last=False)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    full_at: float = 0.0


def _check_cost(limit: Limit, cost: int) -> None:
    if not 1 <= cost <= limit.burst:
        raise ValueError(f"cost must be between 1 and the burst ({limit.burst}), not {cost}")


def _take(tokens: float, updated: float, now: float, limit: Limit, cost: int) -> tuple[float, float, Decision]:
    """Refill for the time since ``updated``, then take ``cost``; the Lua script mirrors this."""
    tokens = min(float(limit.burst), tokens)
    if now > updated:  # a clock that steps back never mints tokens
        tokens = min(float(limit.burst), tokens + (now - updated) * limit.per_second)
        updated = now
    if tokens >= cost:
        tokens -= cost
        return tokens, updated, Decision(allowed=True, remaining=math.floor(tokens), retry_after_s=0.0)
    wait = (cost - tokens) / limit.per_second
    return tokens, updated, Decision(allowed=False, remaining=math.floor(tokens), retry_after_s=wait)


# KEYS[1]: the bucket hash. ARGV: capacity, refill per second, cost, now ('' = the server's TIME).
# Numbers travel as '%.17g' strings: Redis truncates Lua numbers to integers in replies.
_TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[4])
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens)
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
local ttl_ms = math.ceil((capacity - tokens) / rate * 1000) + tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl_ms))
return {allowed, string.format('%.17g', tokens), string.format('%.17g', retry)}
"""


class RedisRateLimiter:
    """One bucket per key in a Redis hash, shared by every replica that uses the same prefix.

    Refill and take happen in one Lua script (EVALSHA, loaded again if the server lost it),
    so concurrent requests from any number of replicas never over-admit. The time comes from
    the Redis server's ``TIME`` by default: one clock for all replicas, so skew between
    machines cannot mint or lose tokens. ``clock`` replaces it (tests drive time with it;
    all replicas must then share that clock). The hash expires once it would be full again.
    """

    def __init__(self, *, url: str, prefix: str = DEFAULT_PREFIX, clock: Callable[[], float] | None = None) -> None:
        self._prefix = prefix
        self._clock = clock
        self._password = password_of(url)
        try:
            self._client = connect(url, timeout_s=CONNECT_TIMEOUT_S)
        except ValueError:
            raise RateLimiterUnavailable("the configured Redis URL is not valid") from None
        self._script = self._client.register_script(_TAKE_SCRIPT)

    async def acquire(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        _check_cost(limit, cost)
        now = "" if self._clock is None else repr(float(self._clock()))
        args = (repr(float(limit.burst)), repr(limit.per_second), str(cost), now, str(TTL_SLACK_MS))
        try:
            allowed, tokens, retry = await self._script(keys=[self._prefix + key], args=args)
        except RedisError as exc:
            raise RateLimiterUnavailable(self._reason(exc)) from None
        remaining = math.floor(float(tokens))
        if int(allowed) == 1:
            return Decision(allowed=True, remaining=remaining, retry_after_s=0.0)
        return Decision(allowed=False, remaining=remaining, retry_after_s=float(retry))

    async def close(self) -> None:
        await self._client.aclose()

    def _reason(self, exc: RedisError) -> str:
        text = redact(str(exc), self._password).strip()
        line = text.splitlines()[0] if text else ""
        return f"{type(exc).__name__}: {line}"[:300]
