"""The bot server with its Slack app, a fake model and a fake Slack, all on 127.0.0.1:
signed requests in, recorded Web API calls out.

``SlackHarness.held_core()`` holds every call into the core while a test checks that Slack's
request was acknowledged first: the order of events, not a stopwatch, proves "ack at once"."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from pydantic import SecretStr

from bot.core.assistant import Assistant
from bot.core.types import Where
from bot.platform import ServerContext
from bot.server import build_app
from bot.slack import blocks
from bot.slack.app import SlackPlatform
from chat2sql.settings import Settings
from tests.support.assistant import make_assistant
from tests.support.clients import ScriptedClient
from tests.support.fake_slack import FakeSlack, signed_headers

SECRET = "test-signing-secret"
ADMIN_USER = "U-admin"
# The core's coroutines a Slack request can lead to: the model, the databases, the store.
CORE_CALLS = ("handle", "preview", "explain", "chart", "feedback", "schema_text", "claim", "follows_up")


class CoreGate:
    """Holds the assistant's coroutines (``CORE_CALLS``) at their start while closed, and
    records each call as it goes through (``passed``, in order)."""

    def __init__(self, assistant: Assistant) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.passed: list[str] = []
        for name in CORE_CALLS:
            setattr(assistant, name, self._gated(name, getattr(assistant, name)))

    def _gated(self, name: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def gated(*args: Any, **kwargs: Any) -> Any:
            await self._open.wait()
            self.passed.append(name)
            return await call(*args, **kwargs)

        return gated

    @contextmanager
    def closed(self) -> Iterator[CoreGate]:
        self._open.clear()
        try:
            yield self
        finally:
            self._open.set()


class SlackHarness:
    def __init__(self, *, url: str, fake: FakeSlack, assistant: Assistant, client: Any, ctx: ServerContext):
        self.url = url
        self.fake = fake
        self.assistant = assistant
        self.model = client
        self.ctx = ctx
        self.http = httpx.AsyncClient(base_url=url, timeout=30)
        self._ts = 0
        self._gate: CoreGate | None = None

    def next_ts(self) -> str:
        self._ts += 1
        return f"1710000000.{self._ts:06d}"

    def held_core(self) -> AbstractContextManager[CoreGate]:
        """Within: no call into the core goes through (each waits at its start); on leaving,
        they all do. A response that arrives within was acknowledged before any core work."""
        if self._gate is None:
            self._gate = CoreGate(self.assistant)
        return self._gate.closed()

    async def post(
        self, path: str, body: str, *, content_type: str, headers: dict[str, str] | None = None, sign: bool = True
    ) -> tuple[httpx.Response, float]:
        """The response and its round trip in seconds (bench/slack_bench.py reads those; tests
        prove an early ack by order instead, with ``held_core``)."""
        all_headers = {
            "Content-Type": content_type,
            **(signed_headers(SECRET, body) if sign else {}),
            **(headers or {}),
        }
        started = time.perf_counter()
        response = await self.http.post(path, content=body, headers=all_headers)
        return response, time.perf_counter() - started

    async def command(
        self, text: str, *, user: str = "U-alice", channel: str = "C-general", team: str = "T1", hook: str = "cmd"
    ) -> tuple[httpx.Response, float]:
        body = urlencode(
            {
                "token": "legacy",
                "team_id": team,
                "team_domain": "test",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/sql",
                "text": text,
                "api_app_id": "A1",
                "response_url": self.fake.response_url(hook),
                "trigger_id": "trigger-1",
            }
        )
        return await self.post("/slack/events", body, content_type="application/x-www-form-urlencoded")

    async def event(
        self, event: dict[str, Any], *, event_id: str = "Ev1", team: str = "T1", retry: int | None = None
    ) -> tuple[httpx.Response, float]:
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": team,
                "api_app_id": "A1",
                "event": event,
                "type": "event_callback",
                "event_id": event_id,
                "event_time": 1710000000,
                "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}],
            }
        )
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        return await self.post("/slack/events", body, content_type="application/json", headers=headers)

    async def interaction(self, payload: dict[str, Any]) -> tuple[httpx.Response, float]:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post("/slack/events", body, content_type="application/x-www-form-urlencoded")

    def click(
        self, action_id: str, value: str, *, user: str = "U-alice", message_ts: str = "1710000000.000001"
    ) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "team": {"id": "T1", "domain": "test"},
            "user": {"id": user, "team_id": "T1"},
            "api_app_id": "A1",
            "channel": {"id": "C-general", "name": "general"},
            "container": {"type": "message", "message_ts": message_ts, "channel_id": "C-general"},
            "message": {"type": "message", "ts": message_ts, "text": "answer"},
            "trigger_id": "trigger-2",
            "response_url": self.fake.response_url("action"),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "answer:1", "value": value}],
        }

    async def idle(self, timeout: float = 10.0) -> None:
        """Until every background answer has finished."""
        deadline = time.monotonic() + timeout
        while len(self.ctx.background):
            assert time.monotonic() < deadline, "background work did not finish"
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running_slack(
    settings: Settings,
    sqlite_url: str,
    *,
    answers: Any = None,
    oauth: bool = False,
    socket: bool = False,
    http: bool = True,
    model: Any = None,
    **config: Any,
) -> AsyncIterator[SlackHarness]:
    """The server on a free port. ``model``: any InferenceClient (default: a scripted instant one)."""
    fake = await FakeSlack().start()
    model = model or ScriptedClient(answers or ["SELECT name FROM employees ORDER BY id"])
    assistant = make_assistant(settings, model, **config)
    reply = await assistant.handle(f"admin register hr {sqlite_url} People data", admin_where())
    assert reply.kind == "text", reply.text
    updates: dict[str, Any] = {"slack_api_url": fake.api_url}
    if http:
        updates["slack_signing_secret"] = SecretStr(SECRET)
    if oauth:
        updates |= {"slack_client_id": "111.222", "slack_client_secret": SecretStr("client-secret")}
    else:
        updates["slack_bot_token"] = SecretStr("xoxb-test")
    if socket:
        updates["slack_app_token"] = SecretStr("xapp-test")
    slack_settings = settings.model_copy(update=updates)
    ctx = ServerContext(settings=slack_settings, assistant=assistant, engine=assistant.store.engine)
    platform = SlackPlatform.from_settings(ctx)
    app = build_app(slack_settings, context=ctx, platforms=[platform])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "the bot server did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    harness = SlackHarness(url=f"http://127.0.0.1:{port}", fake=fake, assistant=assistant, client=model, ctx=ctx)
    try:
        yield harness
    finally:
        await harness.http.aclose()
        server.should_exit = True
        await task
        await fake.stop()


def admin_where() -> Where:
    return Where(platform="slack", workspace="T1", channel="C-general", user_id=ADMIN_USER)


def all_sections_fit(content: Sequence[blocks.Block]) -> bool:
    """Every section and context text within Slack's limit, and not too many blocks."""
    for b in content:
        texts = (
            [b["text"]["text"]]
            if b.get("type") == "section"
            else [e["text"] for e in b.get("elements", []) if "text" in e and isinstance(e["text"], str)]
        )
        if any(len(t) > blocks.MAX_SECTION_CHARS for t in texts):
            return False
    return len(content) <= blocks.MAX_BLOCKS
