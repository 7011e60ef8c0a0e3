"""The response cache in memory and on the real Redis server (db 15, a fresh prefix per test)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis

from chat2sql.cache import (
    CacheUnavailable,
    InMemoryCache,
    RedisCache,
    ResponseCache,
    cache_key,
    make_cache,
    normalize_question,
)
from chat2sql.messages import user_message

UNREACHABLE_URL = "redis://:Hunter2Secret@127.0.0.1:1/15"
MINUTE_S = 60.0


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"chat2sql:test:cache:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest_asyncio.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ResponseCache]:
    made: ResponseCache
    if request.param == "memory":
        made = InMemoryCache()
    else:
        url = str(request.getfixturevalue("redis_url"))
        made = RedisCache(url=url, prefix=str(request.getfixturevalue("redis_prefix")))
    yield made
    await made.close()


# --- both caches --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_miss_set_get_overwrite(cache: ResponseCache) -> None:
    assert await cache.get("k") is None
    await cache.set("k", "SELECT 1", ttl_s=MINUTE_S)
    assert await cache.get("k") == "SELECT 1"
    await cache.set("k", "SELECT 2", ttl_s=MINUTE_S)
    assert await cache.get("k") == "SELECT 2"
    assert await cache.get("other") is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "value",
    [
        "SELECT name FROM kunden WHERE stadt = 'München' -- ✓",
        "SELECT * FROM 顧客 WHERE 名前 LIKE '%太郎%'",
        '{"sql": "SELECT 1", "note": "🚀 émoji\\u0000 and\nnewlines\ttabs"}',
        "",
        "x" * 100_000,
    ],
)
async def test_values_round_trip_exactly(cache: ResponseCache, value: str) -> None:
    key = cache_key("db", normalize_question("Wie viele Kunden?"))
    await cache.set(key, value, ttl_s=MINUTE_S)
    assert await cache.get(key) == value


@pytest.mark.asyncio
@pytest.mark.parametrize("ttl_s", [0, -1, float("nan"), float("inf")])
async def test_ttl_must_be_positive_and_finite(cache: ResponseCache, ttl_s: float) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        await cache.set("k", "v", ttl_s=ttl_s)
    assert await cache.get("k") is None


# --- in memory ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_memory_entries_expire_with_their_ttl() -> None:
    clock = FakeClock()
    cache = InMemoryCache(clock=clock)
    await cache.set("short", "a", ttl_s=10)
    await cache.set("long", "b", ttl_s=MINUTE_S)
    clock.advance(9.999)
    assert await cache.get("short") == "a"
    clock.advance(0.001)
    assert await cache.get("short") is None
    assert len(cache) == 1  # the expired entry is gone, not just hidden
    assert await cache.get("long") == "b"
    clock.advance(MINUTE_S)
    assert await cache.get("long") is None
    assert len(cache) == 0


@pytest.mark.asyncio
async def test_memory_overwrite_restarts_the_ttl() -> None:
    clock = FakeClock()
    cache = InMemoryCache(clock=clock)
    await cache.set("k", "old", ttl_s=10)
    clock.advance(8)
    await cache.set("k", "new", ttl_s=10)
    clock.advance(8)
    assert await cache.get("k") == "new"


@pytest.mark.asyncio
async def test_memory_is_bounded_least_recently_used_first() -> None:
    cache = InMemoryCache(max_entries=3, clock=FakeClock())
    for key in ("a", "b", "c"):
        await cache.set(key, key.upper(), ttl_s=MINUTE_S)
    assert await cache.get("a") == "A"  # a is now the most recently used
    await cache.set("d", "D", ttl_s=MINUTE_S)
    assert len(cache) == 3
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in ("a", "c", "d")] == ["A", "C", "D"]
    await cache.set("c", "C2", ttl_s=MINUTE_S)  # writing counts as use too
    await cache.set("e", "E", ttl_s=MINUTE_S)
    assert await cache.get("a") is None
    assert [await cache.get(k) for k in ("c", "d", "e")] == ["C2", "D", "E"]


@pytest.mark.asyncio
async def test_memory_drops_expired_entries_without_being_asked() -> None:
    clock = FakeClock()
    cache = InMemoryCache(clock=clock)
    for i in range(1_000):
        await cache.set(f"q{i}", "v", ttl_s=10)
    clock.advance(10)
    await cache.set("fresh", "v", ttl_s=10)
    assert len(cache) == 1


@pytest.mark.asyncio
async def test_memory_close_empties_it() -> None:
    cache = InMemoryCache()
    await cache.set("k", "v", ttl_s=MINUTE_S)
    await cache.close()
    assert len(cache) == 0 and await cache.get("k") is None


def test_memory_bound_must_hold_something() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        InMemoryCache(max_entries=0)


# --- Redis --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_redis_expires_entries_on_the_server(redis_url: str, redis_prefix: str) -> None:
    cache = RedisCache(url=redis_url, prefix=redis_prefix)
    await cache.set("k", "v", ttl_s=0.2)
    client = redis.Redis.from_url(redis_url)
    try:
        assert 0 < int(client.pttl(f"{redis_prefix}k")) <= 200  # SET ... PX, on the prefixed key
        assert await cache.get("k") == "v"
        await asyncio.sleep(0.4)
        assert await cache.get("k") is None
        assert not client.exists(f"{redis_prefix}k")
    finally:
        client.close()
        await cache.close()


@pytest.mark.asyncio
async def test_redis_sub_millisecond_ttl_still_stores(redis_url: str, redis_prefix: str) -> None:
    cache = RedisCache(url=redis_url, prefix=redis_prefix)
    await cache.set("k", "v", ttl_s=0.0001)  # rounds up to 1 ms, never to 0 (an error in Redis)
    client = redis.Redis.from_url(redis_url)
    assert int(client.pttl(f"{redis_prefix}k")) in (-2, 0, 1)
    client.close()
    await cache.close()


@pytest.mark.asyncio
async def test_redis_replicas_share_a_prefix_and_nothing_else(redis_url: str, redis_prefix: str) -> None:
    first = RedisCache(url=redis_url, prefix=redis_prefix)
    second = RedisCache(url=redis_url, prefix=redis_prefix)
    other = RedisCache(url=redis_url, prefix=redis_prefix + "other:")
    await first.set("k", "shared", ttl_s=MINUTE_S)
    assert await second.get("k") == "shared"
    assert await other.get("k") is None
    for cache in (first, second, other):
        await cache.close()


@pytest.mark.asyncio
async def test_unreachable_redis_fails_open_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisCache(url=UNREACHABLE_URL, prefix="chat2sql:test:never:")
    with caplog.at_level(logging.DEBUG, logger="chat2sql.cache"):
        assert await cache.get("k") is None
        await cache.set("k", "v", ttl_s=MINUTE_S)  # skipped, not raised
        assert await cache.get("k") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one outage, one warning; the rest at debug level
    fields = getattr(warnings[0], "fields", {})
    assert fields["operation"] == "get" and "Connection" in fields["reason"]
    assert "Hunter2Secret" not in caplog.text
    await cache.close()


@pytest.mark.asyncio
async def test_unreachable_redis_ping_raises_a_safe_error() -> None:
    cache = RedisCache(url=UNREACHABLE_URL)
    with pytest.raises(CacheUnavailable) as info:
        await cache.ping()
    assert "Hunter2Secret" not in info.value.detail and "Hunter2Secret" not in str(info.value)
    assert user_message(info.value) == info.value.message
    assert "Hunter2Secret" not in info.value.message and "redis://" not in info.value.message
    await cache.close()


@pytest.mark.asyncio
async def test_reachable_redis_ping(redis_url: str) -> None:
    cache = RedisCache(url=redis_url)
    await cache.ping()
    await cache.close()


@pytest.mark.parametrize("url", ["http://user:Hunter2Secret@host/0", "not a url"])
def test_malformed_url_fails_at_construction(url: str) -> None:
    with pytest.raises(CacheUnavailable) as info:
        RedisCache(url=url)
    assert "Hunter2Secret" not in info.value.detail and "Hunter2Secret" not in info.value.message


@pytest.mark.asyncio
async def test_make_cache_picks_by_configuration() -> None:
    memory = make_cache(None)
    assert isinstance(memory, InMemoryCache)
    shared = make_cache(UNREACHABLE_URL)  # building it connects to nothing yet
    assert isinstance(shared, RedisCache)
    for cache in (memory, shared):
        await cache.close()


# --- keys -----------------------------------------------------------------------------------


def test_cache_key_is_stable_across_processes_and_releases() -> None:
    # A fixed value: a change here silently empties every deployed cache.
    assert cache_key("shop", "h1", "seed", "schema", "how many customers") == (
        "9906f14099dfb068ff17ecca0710660e981c6610172607deb437ad63b2026383"
    )


def test_cache_key_shape_and_sensitivity() -> None:
    key = cache_key("shop", "how many customers")
    assert len(key) == 64 and int(key, 16) >= 0
    assert cache_key("shop", "how many customers") == key
    assert cache_key("how many customers", "shop") != key  # order matters
    assert cache_key("ab", "c") != cache_key("a", "bc")  # no ambiguous joins
    assert cache_key("a|b") != cache_key("a", "b")
    assert cache_key("") != cache_key()
    assert cache_key("München") != cache_key("Munchen")


@pytest.mark.parametrize(
    ("question", "normalized"),
    [
        ("How many  customers?", "how many customers"),
        ("how many customers", "how many customers"),
        ("  HOW\tmany\ncustomers ?!. ", "how many customers"),
        ("Revenue by region...", "revenue by region"),
        ("Straße in München？", "strasse in münchen"),
        ("orders over 1.5 in 2024?", "orders over 1.5 in 2024"),
        ("Is 'N/A' a status?", "is 'n/a' a status"),
        ("customers\u00a0per\u2003country", "customers per country"),
        ("???", ""),
        ("", ""),
    ],
)
def test_normalize_question(question: str, normalized: str) -> None:
    assert normalize_question(question) == normalized


def test_questions_that_differ_in_meaning_stay_apart() -> None:
    assert normalize_question("top 10 customers") != normalize_question("top 100 customers")
    assert normalize_question("sales in 2023?") != normalize_question("sales in 2024?")
    assert normalize_question("Why?") != normalize_question("Why not?")
