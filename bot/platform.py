"""The seam between the core and the chat platforms.

A platform (``bot/slack/``, ``bot/teams/``, a third one) is a translation: its payload in, a
core call, its reply out. What every platform needs besides lives here, once:

- ``Platform``: what the server mounts, starts and stops;
- ``ServerContext``: the settings, the assistant, the metrics and the background tasks;
- ``Background``: tasks that outlive the request that started them, drained on shutdown;
- ``Answers`` and ``answer_once``: the answering policy — a delivery claimed once (a
  platform's retry never answers twice, across replicas), a bounded number of answers at
  once, the in-flight/reply/latency/delivery metrics, and a last-resort reply when the core
  itself fails.

Adding a platform: one package with a ``Platform`` and one line in ``bot.wiring.platforms``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from fastapi import FastAPI
from sqlalchemy import Engine

from bot.core.assistant import Assistant
from bot.core.types import Reply
from bot.metrics import BotMetrics
from chat2sql import messages
from chat2sql.settings import Settings

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 30.0
MAX_CONCURRENT_ANSWERS = 16  # per platform and process; more wait their turn (the worker batches 8)


class Background:
    """Background tasks that outlive the request that started them (kept referenced, so the
    event loop cannot drop them; drained on shutdown)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()

    def __len__(self) -> int:
        return len(self._tasks)


class Platform(Protocol):
    """A chat platform served by the app (Slack, Teams)."""

    name: str

    def mount(self, app: FastAPI) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ServerContext:
    """What every platform shares: settings, the assistant, the registry database's engine,
    metrics and background tasks."""

    def __init__(self, *, settings: Settings, assistant: Assistant, engine: Engine) -> None:
        self.settings = settings
        self.assistant = assistant
        self.engine = engine  # the registry database's, for a platform's own tables (installations, threads)
        self.metrics: BotMetrics = assistant.metrics  # the core's and the platforms' on one registry
        self.background = Background()


class Answers:
    """The answering policy of one platform (see the module's docstring)."""

    def __init__(
        self, platform: str, *, assistant: Assistant, metrics: BotMetrics, max_concurrent: int = MAX_CONCURRENT_ANSWERS
    ) -> None:
        self.platform = platform
        self._assistant = assistant
        self._metrics = metrics
        self._slots = asyncio.Semaphore(max_concurrent)

    async def claim(self, key: str) -> bool:
        """First delivery of ``key``? Repeats are counted and not answered."""
        fresh = await self._assistant.claim(key)
        if not fresh:
            self._metrics.duplicates.labels(self.platform).inc()
        return fresh

    async def run(self, ask: Callable[[], Awaitable[Reply]]) -> tuple[Reply, float]:
        """The core's reply and when answering began. A burst queues here, cheaply, instead of
        crowding the event loop that acknowledges the next requests; the core answers every
        failure itself, and anything it lets through still gets a reply."""
        started = time.perf_counter()
        gauge = self._metrics.in_flight.labels(self.platform)
        gauge.inc()
        try:
            async with self._slots:
                return await ask(), started
        except Exception:
            log.exception("the assistant failed")
            return Reply(kind="error", text=messages.user_message(Exception()), error_kind="internal"), started
        finally:
            gauge.dec()

    async def deliver(self, send: Callable[[], Awaitable[bool]], reply: Reply, started: float) -> bool:
        """Send the one final reply; a failure is counted and logged, never raised."""
        try:
            sent = await send()
        except Exception:
            log.warning("a reply could not be delivered", extra={"fields": {"platform": self.platform}}, exc_info=True)
            sent = False
        if not sent:
            self._metrics.delivery_failures.labels(self.platform).inc()
        outcome = reply.kind if reply.kind != "error" else reply.error_kind or "error"
        self._metrics.replies.labels(self.platform, outcome).inc()
        self._metrics.answer_seconds.labels(self.platform).observe(time.perf_counter() - started)
        return sent


async def answer_once(
    answers: Answers,
    *,
    key: str | None,
    ask: Callable[[], Awaitable[Reply]],
    send: Callable[[Reply], Awaitable[bool]],
) -> bool:
    """Claim ``key`` (None: nothing to claim), answer, send the reply: False for a repeat."""
    if key is not None and not await answers.claim(key):
        return False
    reply, started = await answers.run(ask)
    await answers.deliver(lambda: send(reply), reply, started)
    return True
