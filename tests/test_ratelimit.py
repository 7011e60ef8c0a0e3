"""Token buckets in memory and on the real Redis server (db 15, a fresh prefix per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
import redis
import redis.asyncio
from redis.exceptions import RedisError

from chat2sql.ratelimit import (
    TIERS,
    Decision,
    InMemoryRateLimiter,
    Limit,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
    make_rate_limiter,
)
from tests.support.databases import unavailable

REDIS_URL = "redis://127.0.0.1:6379/15"
UNREACHABLE_URL = "redis://127.0.0.1:1/15"
ONE_PER_SECOND = Limit(per_minute=60, burst=3)
FROZEN = Limit(per_minute=0.001, burst=10)  # refills about nothing during a test


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Factory = Callable[..., RateLimiter]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"chat2sql:test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except RedisError as exc:
        client.close()
        unavailable("Redis", exc)
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest_asyncio.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Builds limiters of one kind; the Redis ones of one test share one prefix, i.e. one store."""
    made: list[RateLimiter] = []
    prefix = str(request.getfixturevalue("redis_prefix")) if request.param == "redis" else ""

    def factory(*, clock: Callable[[], float]) -> RateLimiter:
        limiter: RateLimiter
        if request.param == "memory":
            limiter = InMemoryRateLimiter(clock=clock)
        else:
            limiter = RedisRateLimiter(url=REDIS_URL, prefix=prefix, clock=clock)
        made.append(limiter)
        return limiter

    yield factory
    for limiter in made:
        await limiter.close()


async def _take_all(limiter: RateLimiter, key: str, limit: Limit, n: int) -> list[Decision]:
    return [await limiter.acquire(key, limit) for _ in range(n)]


@pytest.mark.asyncio
async def test_burst_then_refusal_with_retry_after(make: Factory) -> None:
    clock = FakeClock()
    limiter = make(clock=clock)
    decisions = await _take_all(limiter, "k", ONE_PER_SECOND, 3)
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert all(d.retry_after_s == 0 for d in decisions)
    refused = await limiter.acquire("k", ONE_PER_SECOND)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after_s == pytest.approx(1.0)
    clock.advance(0.25)
    assert (await limiter.acquire("k", ONE_PER_SECOND)).retry_after_s == pytest.approx(0.75)


@pytest.mark.asyncio
async def test_refill_over_time_never_beyond_burst(make: Factory) -> None:
    clock = FakeClock()
    limiter = make(clock=clock)
    await _take_all(limiter, "k", ONE_PER_SECOND, 3)
    clock.advance(0.999)
    assert not (await limiter.acquire("k", ONE_PER_SECOND)).allowed
    clock.advance(0.002)
    assert (await limiter.acquire("k", ONE_PER_SECOND)).allowed
    assert not (await limiter.acquire("k", ONE_PER_SECOND)).allowed
    clock.advance(3600)  # an hour idle refills to the burst, not to 3600 tokens
    decisions = await _take_all(limiter, "k", ONE_PER_SECOND, 4)
    assert [d.allowed for d in decisions] == [True, True, True, False]


@pytest.mark.asyncio
async def test_a_clock_stepping_back_mints_nothing(make: Factory) -> None:
    clock = FakeClock()
    limiter = make(clock=clock)
    await _take_all(limiter, "k", ONE_PER_SECOND, 3)
    clock.advance(-10)
    assert not (await limiter.acquire("k", ONE_PER_SECOND)).allowed
    clock.advance(10.5)  # back to where it was, plus half a token
    assert not (await limiter.acquire("k", ONE_PER_SECOND)).allowed
    clock.advance(0.5)
    assert (await limiter.acquire("k", ONE_PER_SECOND)).allowed


@pytest.mark.asyncio
async def test_keys_are_independent(make: Factory) -> None:
    limiter = make(clock=FakeClock())
    await _take_all(limiter, "alice", ONE_PER_SECOND, 3)
    assert not (await limiter.acquire("alice", ONE_PER_SECOND)).allowed
    bob = await limiter.acquire("bob", ONE_PER_SECOND)
    assert bob.allowed and bob.remaining == 2


@pytest.mark.asyncio
async def test_cost_greater_than_one(make: Factory) -> None:
    clock = FakeClock()
    limiter = make(clock=clock)
    limit = Limit(per_minute=120, burst=10)  # 2 tokens a second
    first = await limiter.acquire("k", limit, cost=7)
    assert first.allowed and first.remaining == 3
    refused = await limiter.acquire("k", limit, cost=5)
    assert not refused.allowed and refused.remaining == 3
    assert refused.retry_after_s == pytest.approx(1.0)  # 2 more tokens at 2/s
    cheap = await limiter.acquire("k", limit, cost=3)  # a refusal took nothing
    assert cheap.allowed and cheap.remaining == 0
    clock.advance(2.5)
    assert (await limiter.acquire("k", limit, cost=5)).allowed


@pytest.mark.asyncio
@pytest.mark.parametrize("cost", [0, -1, 11])
async def test_impossible_costs_are_refused_loudly(make: Factory, cost: int) -> None:
    limiter = make(clock=FakeClock())
    with pytest.raises(ValueError, match="cost"):
        await limiter.acquire("k", FROZEN, cost=cost)
    assert (await limiter.acquire("k", FROZEN)).remaining == FROZEN.burst - 1  # nothing was taken


@pytest.mark.asyncio
async def test_concurrent_acquires_never_over_admit(make: Factory) -> None:
    limiter = make(clock=FakeClock())
    decisions = await asyncio.gather(*(limiter.acquire("hot", FROZEN) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == FROZEN.burst
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(FROZEN.burst))


@pytest.mark.asyncio
async def test_replicas_share_one_bucket(redis_prefix: str) -> None:
    """Two workers (two clients, two connection pools) draw from the same bucket."""
    clock = FakeClock()
    one = RedisRateLimiter(url=REDIS_URL, prefix=redis_prefix, clock=clock)
    two = RedisRateLimiter(url=REDIS_URL, prefix=redis_prefix, clock=clock)
    try:
        assert (await one.acquire("key-a", ONE_PER_SECOND)).remaining == 2
        assert (await two.acquire("key-a", ONE_PER_SECOND)).remaining == 1
        assert (await one.acquire("key-a", ONE_PER_SECOND)).remaining == 0
        assert not (await two.acquire("key-a", ONE_PER_SECOND)).allowed
        clock.advance(1)
        assert (await two.acquire("key-a", ONE_PER_SECOND)).allowed
        assert not (await one.acquire("key-a", ONE_PER_SECOND)).allowed
        results = await asyncio.gather(*(limiter.acquire("key-b", FROZEN) for limiter in (one, two) for _ in range(50)))
        assert sum(d.allowed for d in results) == FROZEN.burst
    finally:
        await one.close()
        await two.close()


@pytest.mark.asyncio
async def test_redis_server_time_by_default(redis_prefix: str) -> None:
    """Without a clock the script reads the server's TIME: real seconds, shared by all replicas."""
    limiter = RedisRateLimiter(url=REDIS_URL, prefix=redis_prefix)
    try:
        decisions = await _take_all(limiter, "k", ONE_PER_SECOND, 4)
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert 0 < decisions[-1].retry_after_s <= 1.0  # at most the one second a token takes
        refused = await limiter.acquire("k", ONE_PER_SECOND)
        assert (
            not refused.allowed and refused.retry_after_s <= decisions[-1].retry_after_s
        )  # the server's clock moves on
        await asyncio.sleep(refused.retry_after_s + 0.05)
        assert (await limiter.acquire("k", ONE_PER_SECOND)).allowed  # in real seconds: allowed once it said
    finally:
        await limiter.close()


@pytest.mark.asyncio
async def test_redis_bucket_expires_once_it_would_be_full(redis_prefix: str) -> None:
    limiter = RedisRateLimiter(url=REDIS_URL, prefix=redis_prefix)
    client = redis.asyncio.from_url(REDIS_URL)
    try:
        await limiter.acquire("k", ONE_PER_SECOND, cost=2)
        ttl_ms = await client.pttl(f"{redis_prefix}k")
        assert 2_000 < ttl_ms <= 3_000  # 2 s to refill + the slack
        assert await client.hgetall(f"{redis_prefix}k")  # tokens and timestamp, nothing else
    finally:
        await limiter.close()
        await client.aclose()


@pytest.mark.asyncio
async def test_unreachable_redis_raises_a_typed_error() -> None:
    limiter = make_rate_limiter("redis://:Sup3rSecret@127.0.0.1:1/15")
    try:
        with pytest.raises(RateLimiterUnavailable) as info:
            await limiter.acquire("k", TIERS["standard"])
        assert "Sup3rSecret" not in info.value.detail and "Sup3rSecret" not in info.value.message
    finally:
        await limiter.close()


def test_invalid_redis_url_is_a_typed_error() -> None:
    with pytest.raises(RateLimiterUnavailable):
        make_rate_limiter("http://127.0.0.1:6379")


def test_make_rate_limiter_picks_memory_without_url() -> None:
    assert isinstance(make_rate_limiter(None), InMemoryRateLimiter)
    assert isinstance(make_rate_limiter(UNREACHABLE_URL), RedisRateLimiter)


@pytest.mark.asyncio
async def test_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock=clock, max_buckets=100)
    for i in range(1_000):
        await limiter.acquire(f"user-{i}", ONE_PER_SECOND)
    assert len(limiter) == 100
    clock.advance(1.0)  # every bucket has refilled: all of them can go
    await limiter.acquire("new", ONE_PER_SECOND)
    assert len(limiter) == 1


@pytest.mark.asyncio
async def test_eviction_keeps_recently_used_buckets() -> None:
    limiter = InMemoryRateLimiter(clock=FakeClock(), max_buckets=3)
    await _take_all(limiter, "hot", ONE_PER_SECOND, 3)
    for name in ("a", "b"):
        await limiter.acquire(name, ONE_PER_SECOND)
    assert not (await limiter.acquire("hot", ONE_PER_SECOND)).allowed  # touched: now the newest
    await limiter.acquire("c", ONE_PER_SECOND)  # evicts "a", the least recently used
    assert not (await limiter.acquire("hot", ONE_PER_SECOND)).allowed


def test_tiers_and_limits() -> None:
    assert TIERS["standard"] == Limit(60, 100) and TIERS["standard"].per_second == 1.0
    assert TIERS["premium"].burst == 500 and TIERS["internal"].per_minute == 1000
    for bad in ((0, 10), (-1, 10), (60, 0)):
        with pytest.raises(ValueError):
            Limit(*bad)
