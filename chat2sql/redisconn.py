"""One way to open Redis for the rate limiter and the cache: a blocking pool with short
timeouts, so a burst waits briefly for a connection and an outage fails fast."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

MAX_CONNECTIONS = 50
RETRIES = 1


def connect(url: str, *, timeout_s: float) -> redis.asyncio.Redis:
    """Raises ValueError for a malformed URL; connects lazily on first use."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout_s,
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), RETRIES),
    )
    return redis.asyncio.Redis.from_pool(pool)


def password_of(url: str) -> str:
    """The URL's password, so error details can be redacted."""
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""
