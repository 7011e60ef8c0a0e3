"""The platform seam: a third chat platform in a few dozen lines answers end to end through
``answer_once`` (claimed once, metrics, the last-resort reply), mounted by the same server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from bot.core.access import Admins
from bot.core.assistant import Reply
from bot.platform import Answers, ServerContext, answer_once
from bot.server import build_app
from bot.state import assistant_over
from bot.store import BotStore, Where
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter
from chat2sql.settings import Settings
from schemas.registry import Registry
from tests.support.assistant import assistant_config
from tests.support.clients import ScriptedClient
from tests.support.teams import serve

pytestmark = pytest.mark.asyncio

SQL = "SELECT name FROM employees ORDER BY id"


class EchoChat:
    """A made-up chat platform: ``POST /echo/messages {"id", "user", "text"}``; replies are kept in ``posted``."""

    name = "echo"

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.answers = Answers(self.name, assistant=ctx.assistant, metrics=ctx.metrics)
        self.posted: list[Reply] = []

    def mount(self, app: FastAPI) -> None:
        async def messages(request: Request) -> Response:
            body: dict[str, Any] = await request.json()
            where = Where(platform=self.name, workspace="w1", channel="room-1", user_id=body["user"])

            async def ask() -> Reply:
                return await self.ctx.assistant.handle(body["text"], where)

            async def send(reply: Reply) -> bool:
                self.posted.append(reply)
                return True

            key = f"{self.name}:{body['id']}"
            self.ctx.background.spawn(answer_once(self.answers, key=key, ask=ask, send=send), name="echo-answer")
            return Response(status_code=202)  # acknowledged before anything slow

        app.add_api_route("/echo/messages", messages, methods=["POST"])

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def _context(settings: Settings, sqlite_url: str) -> ServerContext:
    assistant = assistant_over(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=ScriptedClient([SQL]),
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse("echo:admin"),
        config=assistant_config(cache_ttl_s=0),
    )
    admin = Where(platform="echo", workspace="w1", channel="room-1", user_id="admin")
    assert "Registered" in (await assistant.handle(f"admin register hr {sqlite_url}", admin)).text
    return ServerContext(settings=settings, assistant=assistant, engine=assistant.store.engine)


async def test_a_third_platform_answers_once_through_the_seam(settings: Settings, sqlite_url: str) -> None:
    ctx = await _context(settings, sqlite_url)
    echo = EchoChat(ctx)
    async with serve(build_app(settings, context=ctx, platforms=[echo])) as url, httpx.AsyncClient() as http:
        assert (await http.get(f"{url}/healthz")).json()["platforms"] == ["echo"]
        message = {"id": "m1", "user": "u-ann", "text": "who works here?"}
        assert (await http.post(f"{url}/echo/messages", json=message)).status_code == 202
        assert (await http.post(f"{url}/echo/messages", json=message)).status_code == 202  # a retry
        await ctx.background.drain()
        (reply,) = echo.posted
        assert reply.answer is not None and reply.answer.sql.startswith(SQL) and reply.answer.database == "hr"
        metrics = (await http.get(f"{url}/metrics")).text
    assert 'chat2sql_bot_replies_total{outcome="answer",platform="echo"} 1.0' in metrics
    assert 'chat2sql_bot_duplicate_deliveries_total{platform="echo"} 1.0' in metrics
    (audit,) = [a for a in ctx.assistant.store.audit(limit=5) if a.question == "who works here?"]
    assert audit.platform == "echo"  # the audit row, written before the reply


async def test_the_seam_answers_a_failing_core_and_counts_a_failed_send(settings: Settings, sqlite_url: str) -> None:
    ctx = await _context(settings, sqlite_url)
    answers = Answers("echo", assistant=ctx.assistant, metrics=ctx.metrics, max_concurrent=1)

    async def broken() -> Reply:
        raise RuntimeError("a bug with a secret: postgresql://u:hunter2@db/x")

    sent: list[Reply] = []

    async def send(reply: Reply) -> bool:
        sent.append(reply)
        return True

    assert await answer_once(answers, key=None, ask=broken, send=send)
    (reply,) = sent
    assert reply.kind == "error" and reply.error_kind == "internal" and "hunter2" not in reply.text

    async def unreachable(reply: Reply) -> bool:
        raise OSError("the platform is down")

    async def fine() -> Reply:
        return Reply(kind="text", text="ok")

    assert await answer_once(answers, key="k1", ask=fine, send=unreachable)  # logged and counted, never raised
    assert not await answer_once(answers, key="k1", ask=fine, send=send)  # claimed already
    failures = ctx.metrics.delivery_failures.labels("echo")._value.get()  # type: ignore[attr-defined]
    assert failures == 1.0

    # One answer at a time here: the second waits for the first's slot, then runs.
    order: list[str] = []
    gate = asyncio.Event()

    async def slow() -> Reply:
        order.append("slow")
        await gate.wait()
        return Reply(kind="text", text="slow")

    async def quick() -> Reply:
        order.append("quick")
        return Reply(kind="text", text="quick")

    first = asyncio.create_task(answers.run(slow))
    second = asyncio.create_task(answers.run(quick))
    await asyncio.sleep(0.05)
    assert order == ["slow"]
    gate.set()
    await asyncio.gather(first, second)
    assert order == ["slow", "quick"]
    await ctx.assistant.close()
