"""The Slack app: Bolt's async app over the core, served at ``/slack/events``.

Each entry point is acknowledged before anything slow (the answer runs in a background task):
the ``/sql`` command, mentions, thread follow-ups and direct messages (``listeners``), the
buttons on an answer and a clarifying question's choices (``actions``), and Slack's
assistant panel (``assistant``). ``requests`` reads a payload into the core's terms,
``delivery`` takes a reply back to Slack, ``oauth`` installs the app in more workspaces.

Slack retries an event it thinks was lost (``X-Slack-Retry-Num``); each message is claimed
once in the registry database, so a retry never produces a second answer. Requests are
verified by Bolt's signature check (HMAC over ``v0:{timestamp}:{body}``, five minutes'
tolerance); nothing here can turn it off. Workspaces without a public URL use Socket Mode
(``SLACK_APP_TOKEN``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.assistant import Reply
from bot.core.types import Where
from bot.platform import Answers, ServerContext
from bot.slack import listeners
from bot.slack.actions import Actions
from bot.slack.assistant import build_assistant
from bot.slack.delivery import Delivery, api_error
from bot.slack.oauth import INSTALL_PATH, REDIRECT_PATH, InstallationStore, StateStore, oauth_flow
from bot.slack.requests import PLATFORM
from bot.slack.threads import ThreadContextStore
from chat2sql.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class SlackPlatform:
    name = PLATFORM

    def __init__(self, ctx: ServerContext, bolt: AsyncApp, *, app_token: str | None = None, http: bool = True) -> None:
        self.ctx = ctx
        self.bolt = bolt
        self._app_token = app_token
        self._http = http
        self._handler = AsyncSlackRequestHandler(bolt)
        self._socket: Any = None
        self.answers = Answers(PLATFORM, assistant=ctx.assistant, metrics=ctx.metrics)
        self._stores: list[InstallationStore | StateStore] = []
        listeners.register(bolt, ctx, claim=self.claim, ask=self.ask)
        Actions(ctx, ask=self.ask, send=self._send).register(bolt)
        threads = ThreadContextStore(engine=ctx.engine)
        bolt.assistant(build_assistant(ctx.assistant, threads, claim=self.claim, ask=self.ask, send=self._send))

    # --- set-up -------------------------------------------------------------------------

    @staticmethod
    def configured(settings: Settings) -> bool:
        oauth = bool(settings.slack_client_id and settings.slack_client_secret)
        http = bool(settings.slack_signing_secret and (settings.slack_bot_token or oauth))
        socket = bool(settings.slack_app_token and settings.slack_bot_token)
        return http or socket

    @classmethod
    def from_settings(cls, ctx: ServerContext) -> SlackPlatform:
        s = ctx.settings
        secret = s.slack_signing_secret.get_secret_value() if s.slack_signing_secret else None
        client = AsyncWebClient(base_url=s.slack_api_url)
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        bolt_log = logging.getLogger("bot.slack.bolt")
        stores: list[InstallationStore | StateStore] = []
        if s.slack_client_id and s.slack_client_secret:
            engine = ctx.engine  # the registry database's one engine
            flow, stores = oauth_flow(
                client=client,
                client_id=s.slack_client_id,
                client_secret=s.slack_client_secret.get_secret_value(),
                engine=engine,
                logger=bolt_log,
            )
            bolt = AsyncApp(signing_secret=secret or "", oauth_flow=flow, client=client, logger=bolt_log)
        else:
            assert s.slack_bot_token is not None
            client.token = s.slack_bot_token.get_secret_value()
            bolt = AsyncApp(signing_secret=secret or "", client=client, logger=bolt_log)
        app_token = s.slack_app_token.get_secret_value() if s.slack_app_token else None
        platform = cls(ctx, bolt, app_token=app_token, http=secret is not None)
        platform._stores = stores
        return platform

    def mount(self, app: FastAPI) -> None:
        if not self._http:
            log.warning(
                "SLACK_SIGNING_SECRET is not set: /slack/events is off, Slack reaches us through Socket Mode only"
            )
            return

        async def events(request: Request) -> Response:
            started = time.perf_counter()
            response = await self._handler.handle(request)
            kind = _kind(request.headers.get("content-type", ""), request.headers.get("x-slack-retry-num"))
            self.ctx.metrics.ack_seconds.labels(PLATFORM, kind).observe(time.perf_counter() - started)
            if response.status_code == 401:
                self.ctx.metrics.rejected.labels(PLATFORM).inc()
            return response

        app.add_api_route(EVENTS_PATH, events, methods=["POST"], include_in_schema=False)
        if self.bolt.oauth_flow is not None:

            async def oauth(request: Request) -> Response:
                return await self._handler.handle(request)

            app.add_api_route(INSTALL_PATH, oauth, methods=["GET"], include_in_schema=False)
            app.add_api_route(REDIRECT_PATH, oauth, methods=["GET"], include_in_schema=False)

    async def start(self) -> None:
        for store in self._stores:
            await asyncio.to_thread(store.create_tables)
        if self._app_token:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(self.bolt, self._app_token, web_client=self.bolt.client)
            await self._socket.connect_async()
            log.info("connected to Slack through Socket Mode")

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None

    # --- questions ----------------------------------------------------------------------

    def ask(self, text: str, where: Where, delivery: Delivery, *, preferred: str | None = None) -> None:
        """Answer in the background: the caller has acknowledged (or is about to).
        ``preferred``: the database to ask when the question names none and follows no answer."""
        self.ctx.background.spawn(self._answer(text, where, delivery, preferred), name="slack-answer")

    async def _answer(self, text: str, where: Where, delivery: Delivery, preferred: str | None) -> None:
        # The claim came first, in the listener: the acknowledgement must not wait for this.
        async def ask() -> Reply:
            return await self.ctx.assistant.handle(
                text, where, notify=delivery.notice, progress=delivery.progress, preferred=preferred
            )

        reply, started = await self.answers.run(ask)
        await self.answers.deliver(lambda: self._send(delivery.final(reply), counted=False), reply, started)

    async def _send(self, call: Awaitable[Any], *, counted: bool = True) -> bool:
        """Make one Slack call; a failure is logged (and counted, unless the caller counts it), never raised."""
        try:
            await call
            return True
        except (TimeoutError, SlackApiError, SlackClientError, OSError) as err:
            if counted:
                self.ctx.metrics.delivery_failures.labels(PLATFORM).inc()
            log.warning("a Slack reply could not be delivered", extra={"fields": {"error": api_error(err)}})
            return False

    async def claim(self, key: str) -> bool:
        """First delivery of ``key``? Retries (``X-Slack-Retry-Num``) and the twin
        ``message``/``app_mention`` events of one message are answered once."""
        return await self.answers.claim(key)


def _kind(content_type: str, retry: str | None) -> str:
    if retry:
        return "retry"
    return "event" if content_type.startswith("application/json") else "command_or_action"
