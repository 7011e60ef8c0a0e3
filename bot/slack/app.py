"""The Slack app: Bolt's async app over the core, served at ``/slack/events``.

Entry points, each acknowledged before anything slow (the answer runs in a background task):

- ``/sql …``: the core's grammar. Answers go to the channel through the command's
  ``response_url``; help, admin output and errors only to the user who asked.
- @mentions: answered in a thread; a later message in that thread (no mention needed) is a
  follow-up that keeps the thread's database and passes the last question and SQL along.
- direct messages: every message is a question.
- buttons: Run preview (a table in the answer's thread, the rows as CSV when they do not
  fit; a Chart button on it when the result has a chart's shape), Explain (the SQL in plain
  English, from its structure), 👍, 👎 (a modal for the corrected SQL), Show schema.
- a clarifying question's choices: buttons (an overflow menu past five) whose click is the
  clicking user's next message, answered where the question was asked.

Slack retries an event it thinks was lost (``X-Slack-Retry-Num``); each message is claimed
once in the registry database, so a retry never produces a second answer. Requests are
verified by Bolt's signature check (HMAC over ``v0:{timestamp}:{body}``, five minutes'
tolerance); nothing here can turn it off. Workspaces without a public URL use Socket Mode
(``SLACK_APP_TOKEN``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import charts
from bot.core.assistant import Reply
from bot.core.explain import explain
from bot.platform import Answers, ServerContext
from bot.slack import blocks
from bot.slack.assistant import build_assistant
from bot.slack.delivery import Delivery, SlashDelivery, ThreadDelivery, api_error, from_slack
from bot.slack.oauth import BOT_SCOPES, InstallationStore, StateStore
from bot.slack.threads import ThreadContextStore
from bot.store import Where
from chat2sql import messages
from chat2sql.settings import Settings

log = logging.getLogger(__name__)

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
MAX_CORRECTION_CHARS = 4000


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
        _register(bolt, self)
        threads = ThreadContextStore(engine=ctx.assistant.store.engine)
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
            engine = ctx.assistant.store.engine  # the registry database's one engine
            installations = InstallationStore(client_id=s.slack_client_id, engine=engine)
            states = StateStore(engine=engine)
            stores = [installations, states]
            flow = AsyncOAuthFlow(
                client=client,
                logger=bolt_log,
                settings=AsyncOAuthSettings(
                    client_id=s.slack_client_id,
                    client_secret=s.slack_client_secret.get_secret_value(),
                    scopes=list(BOT_SCOPES),
                    installation_store=installations,
                    state_store=states,
                    install_path=INSTALL_PATH,
                    redirect_uri_path=REDIRECT_PATH,
                ),
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

    # --- buttons ------------------------------------------------------------------------

    async def preview(self, audit_id: int, where: Where, place: _Place) -> None:
        result = await self.ctx.assistant.preview(audit_id, where)
        content, incomplete = blocks.preview_blocks(result, audit_id=audit_id)
        await self._post_in_thread(place, content, text=result.text or "Preview")
        if incomplete:
            upload = place.client.files_upload_v2(
                channel=place.channel,
                thread_ts=place.thread_ts,
                content=blocks.preview_csv(result),
                filename=f"preview-{audit_id}.csv",
                title=f"Preview of answer {audit_id}",
            )
            if not await self._send(upload):
                await self._post_in_thread(
                    place, [blocks.context(messages.SLACK_FILE_FAILED)], text=messages.SLACK_FILE_FAILED
                )

    async def explain(self, audit_id: int, where: Where, place: _Place) -> None:
        reply = await explain(self.ctx.assistant, audit_id, where)
        if reply.kind == "error":
            await self._ephemeral(place, reply.text)
            return
        await self._post_in_thread(
            place, blocks.explanation_blocks(reply.text), text=reply.text[: blocks.MAX_TEXT_CHARS]
        )

    async def chart(self, audit_id: int, where: Where, place: _Place) -> None:
        """The chart as a PNG file in the answer's thread (``files:write``, like the CSV)."""
        result = await charts.chart(self.ctx.assistant, audit_id, where)
        if not result.ok:
            await self._ephemeral(place, result.text)
            return
        upload = place.client.files_upload_v2(
            channel=place.channel,
            thread_ts=place.thread_ts,
            content=result.png,
            filename=f"chart-{audit_id}.png",
            title=result.text,
            alt_txt=result.text,
        )
        if not await self._send(upload):
            await self._ephemeral(place, messages.CHART_UPLOAD_FAILED)

    async def schema(self, database: str, where: Where, place: _Place) -> None:
        try:
            text = await asyncio.to_thread(self.ctx.assistant.schema_text, database, where)
        except Exception as err:  # UnknownDatabase, NotAllowedHere…: their own sentence
            await self._ephemeral(place, messages.user_message(err))
            return
        await self._post_in_thread(place, blocks.schema_blocks(database, text), text=f"Schema of {database}")

    async def feedback(self, audit_id: int, where: Where, place: _Place, rating: Any, corrected: str | None) -> None:
        reply = await asyncio.to_thread(self.ctx.assistant.feedback, audit_id, where, rating, corrected)
        await self._ephemeral(place, reply.text)  # thanks, and whether a correction became an example

    async def _post_in_thread(self, place: _Place, content: list[blocks.Block], *, text: str) -> None:
        post = place.client.chat_postMessage(
            channel=place.channel, thread_ts=place.thread_ts, blocks=content, text=text
        )
        if not await self._send(post) and place.respond is not None:
            # Not a member of the channel (an answer sent through a response_url): reply the same way.
            await self._send(
                place.respond(blocks=content, text=text, response_type="in_channel", replace_original=False)
            )

    async def _ephemeral(self, place: _Place, text: str) -> None:
        if place.respond is not None:
            await self._send(place.respond(text=text, response_type="ephemeral", replace_original=False))
        else:
            await self._send(
                place.client.chat_postEphemeral(
                    channel=place.channel, user=place.user, text=text, thread_ts=place.thread_ts
                )
            )


def option_delivery(
    body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond, *, text: str
) -> tuple[Where, Delivery]:
    """Where the answer to a clicked choice goes: where the question was asked.

    A ``/sql`` question's choices came back through its ``response_url`` (an ephemeral
    message): the answer goes the same way. Otherwise the choices are a message in a
    thread (or a DM's top level), and the answer follows there, in the thread's context."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
    team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id", "")
    if container.get("is_ephemeral") or not message:
        where = Where(platform=PLATFORM, workspace=team, channel=channel, user_id=user)
        return where, SlashDelivery(respond, user=user, question=text)
    thread_ts = message.get("thread_ts") or container.get("thread_ts")
    if thread_ts is None and not channel.startswith("D"):  # a channel message of ours: its thread
        thread_ts = message.get("ts") or container.get("message_ts")
    where = Where(platform=PLATFORM, workspace=team, channel=channel, user_id=user, thread=thread_ts)
    return where, ThreadDelivery(client, channel=channel, thread_ts=thread_ts, user=user)


class _Place:
    """Where a button's results go: the answer's thread (and its response_url as a fallback)."""

    def __init__(
        self, client: AsyncWebClient, *, channel: str, thread_ts: str | None, user: str, respond: AsyncRespond | None
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.user = user
        self.respond = respond


def _kind(content_type: str, retry: str | None) -> str:
    if retry:
        return "retry"
    return "event" if content_type.startswith("application/json") else "command_or_action"


def _where_of_action(body: dict[str, Any]) -> tuple[Where, str, str | None]:
    """(scope, channel, thread) of a button click on an answer message."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
    thread_ts = (
        message.get("thread_ts") or container.get("thread_ts") or message.get("ts") or container.get("message_ts")
    )
    team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id", "")
    where = Where(platform=PLATFORM, workspace=team, channel=channel, user_id=body["user"]["id"], thread=thread_ts)
    return where, channel, thread_ts


def _audit_id(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _register(bolt: AsyncApp, platform: SlackPlatform) -> None:
    """The listeners. Each acknowledges first; anything slow goes to the background."""
    spawn: Callable[..., Any] = platform.ctx.background.spawn

    @bolt.command("/sql")
    async def on_sql(ack: Any, command: dict[str, Any], respond: AsyncRespond) -> None:
        text = from_slack(command.get("text", ""))
        await ack(text=messages.SLACK_WORKING, response_type="ephemeral")
        where = Where(
            platform=PLATFORM, workspace=command["team_id"], channel=command["channel_id"], user_id=command["user_id"]
        )
        platform.ask(text, where, SlashDelivery(respond, user=command["user_id"], question=text))

    def message_where(event: dict[str, Any], body: dict[str, Any], thread_ts: str | None) -> Where:
        return Where(
            platform=PLATFORM,
            workspace=body.get("team_id", ""),
            channel=event["channel"],
            user_id=event["user"],
            thread=thread_ts,
        )

    async def answer_message(event: dict[str, Any], where: Where, context: Any, client: AsyncWebClient) -> None:
        """A mention or a message, claimed once (Slack's retries, the twin events of one
        message) and answered in its thread."""
        if not await platform.claim(f"slack:{where.workspace}:{where.channel}:{event['ts']}"):
            return
        text = from_slack(event.get("text", ""), bot_user_id=context.bot_user_id)
        delivery = ThreadDelivery(client, channel=where.channel, thread_ts=where.thread, user=where.user_id)
        platform.ask(text, where, delivery)

    @bolt.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any], context: Any, client: AsyncWebClient) -> None:
        where = message_where(event, body, event.get("thread_ts") or event["ts"])
        await answer_message(event, where, context, client)

    @bolt.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any], context: Any, client: AsyncWebClient) -> None:
        if event.get("subtype") or event.get("bot_id") or "user" not in event:
            return  # edits, joins, bots (ourselves included)
        text = event.get("text", "")
        if context.bot_user_id and f"<@{context.bot_user_id}" in text and event.get("channel_type") != "im":
            return  # the app_mention event of the same message answers it
        where = message_where(event, body, event.get("thread_ts"))
        # A channel message is ours only as a follow-up in a thread we answered in.
        if event.get("channel_type") != "im" and (
            not where.thread or await asyncio.to_thread(platform.ctx.assistant.store.last_turn, where) is None
        ):
            return
        await answer_message(event, where, context, client)

    @bolt.event("app_uninstalled")
    @bolt.event("tokens_revoked")
    async def on_uninstalled(body: dict[str, Any]) -> None:
        store = bolt.installation_store
        if store is not None:
            await store.async_delete_all(enterprise_id=body.get("enterprise_id"), team_id=body.get("team_id"))

    def _place(body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond | None) -> tuple[Where, _Place]:
        where, channel, thread_ts = _where_of_action(body)
        return where, _Place(client, channel=channel, thread_ts=thread_ts, user=where.user_id, respond=respond)

    AnswerAction = Callable[[int, Where, _Place], Coroutine[Any, Any, None]]

    def answer_button(run: AnswerAction, name: str) -> Callable[..., Awaitable[None]]:
        """A button on an answer: acknowledged at once, ``run`` in the background."""

        async def on_click(
            ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
        ) -> None:
            await ack()
            audit_id = _audit_id(action.get("value", ""))
            if audit_id is not None:
                where, place = _place(body, client, respond)
                spawn(run(audit_id, where, place), name=name)

        return on_click

    async def thumbs_up(audit_id: int, where: Where, place: _Place) -> None:
        await platform.feedback(audit_id, where, place, "up", None)

    for action_id, run, name in (
        (blocks.PREVIEW, platform.preview, "slack-preview"),
        (blocks.UP, thumbs_up, "slack-feedback"),
        (blocks.EXPLAIN, platform.explain, "slack-explain"),
        (blocks.CHART, platform.chart, "slack-chart"),
    ):
        bolt.action(action_id)(answer_button(run, name))

    @bolt.action(blocks.DOWN)
    async def on_down(ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        audit_id = _audit_id(action.get("value", ""))
        if audit_id is None:
            return
        _, channel, thread_ts = _where_of_action(body)
        view = blocks.correction_modal(audit_id, channel=channel, thread_ts=thread_ts)
        await platform._send(client.views_open(trigger_id=body["trigger_id"], view=view))  # trigger ids live 3 s

    def correction_of(
        body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> tuple[int, Where, _Place] | None:
        """The answer a correction modal is about, and where its thanks go (from the modal's metadata)."""
        meta = json.loads(view.get("private_metadata") or "{}")
        audit_id, channel = meta.get("audit_id"), meta.get("channel", "")
        if not isinstance(audit_id, int):
            return None
        user = body["user"]["id"]
        team = (body.get("team") or {}).get("id") or body["user"].get("team_id", "")
        where = Where(platform=PLATFORM, workspace=team, channel=channel, user_id=user)
        return (
            audit_id,
            where,
            _Place(client, channel=channel, thread_ts=meta.get("thread_ts"), user=user, respond=None),
        )

    @bolt.view(blocks.CORRECTION)
    async def on_correction(ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        values = view.get("state", {}).get("values", {})
        corrected = (
            values.get(blocks.CORRECTION_BLOCK, {}).get(blocks.CORRECTION_INPUT, {}).get("value") or ""
        ).strip()
        if len(corrected) > MAX_CORRECTION_CHARS:
            await ack(response_action="errors", errors={blocks.CORRECTION_BLOCK: messages.SLACK_CORRECTION_TOO_LONG})
            return
        await ack()
        correcting = correction_of(body, view, client)
        if correcting is not None:
            audit_id, where, place = correcting
            spawn(platform.feedback(audit_id, where, place, "down", corrected or None), name="slack-feedback")

    @bolt.view_closed(blocks.CORRECTION)
    async def on_correction_cancelled(
        ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()  # 👎 without a correction is still a 👎
        correcting = correction_of(body, view, client)
        if correcting is not None:
            audit_id, where, place = correcting
            spawn(platform.feedback(audit_id, where, place, "down", None), name="slack-feedback")

    @bolt.action(blocks.OPTION)
    @bolt.action(blocks.OPTION_MENU)
    async def on_option(
        ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        text = action.get("value") or (action.get("selected_option") or {}).get("value") or ""
        if text.strip():
            where, delivery = option_delivery(body, client, respond, text=text)
            platform.ask(text, where, delivery)

    @bolt.action(blocks.SCHEMA)
    async def on_schema(
        ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        where, place = _place(body, client, respond)
        spawn(platform.schema(action.get("value", ""), where, place), name="slack-schema")
