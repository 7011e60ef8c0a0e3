"""The buttons on an answer, and on a clarifying question, and what a click does.

- Run preview: a table in the answer's thread, the rows as CSV when they do not fit (a Chart
  button on it when the result has a chart's shape).
- Chart: the chart as a PNG file in the answer's thread (``files:write``, like the CSV).
- Explain: the SQL in plain English, from its structure.
- 👍; 👎 opens a modal for the corrected SQL (closing it is still a 👎).
- Show schema: the database's schema in the answer's thread.
- a clarifying question's choices (buttons, an overflow menu past five): the clicking user's
  next message, answered where the question was asked.

Each click is acknowledged at once; the work runs in the background. Results go to the
answer's thread, and through the click's ``response_url`` where the bot cannot post there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.types import Where
from bot.platform import ServerContext
from bot.slack import blocks
from bot.slack.delivery import Ask, Send
from bot.slack.requests import (
    action_where,
    button_audit_id,
    corrected_sql,
    correction_where,
    option_delivery,
    option_text,
)
from chat2sql import messages

MAX_CORRECTION_CHARS = 4000


class Place:
    """Where a button's results go: the answer's thread (and its response_url as a fallback)."""

    def __init__(
        self, client: AsyncWebClient, *, channel: str, thread_ts: str | None, user: str, respond: AsyncRespond | None
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.user = user
        self.respond = respond


_AnswerAction = Callable[[int, Where, Place], Coroutine[Any, Any, None]]


class Actions:
    """The buttons' listeners and their work. ``ask`` answers a chosen option in the
    background, ``send`` makes a Slack call whose failure is counted and logged."""

    def __init__(self, ctx: ServerContext, *, ask: Ask, send: Send) -> None:
        self.ctx = ctx
        self._ask = ask
        self._send = send

    # --- the listeners --------------------------------------------------------------------

    def register(self, bolt: AsyncApp) -> None:
        """Each listener acknowledges first; anything slow goes to the background."""
        spawn: Callable[..., Any] = self.ctx.background.spawn

        def answer_button(run: _AnswerAction, name: str) -> Callable[..., Awaitable[None]]:
            """A button on an answer: acknowledged at once, ``run`` in the background."""

            async def on_click(
                ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
            ) -> None:
                await ack()
                audit = button_audit_id(action)
                if audit is not None:
                    where, place = _place(body, client, respond)
                    spawn(run(audit, where, place), name=name)

            return on_click

        async def thumbs_up(audit: int, where: Where, place: Place) -> None:
            await self.feedback(audit, where, place, "up", None)

        for action_id, run, name in (
            (blocks.PREVIEW, self.preview, "slack-preview"),
            (blocks.UP, thumbs_up, "slack-feedback"),
            (blocks.EXPLAIN, self.explain, "slack-explain"),
            (blocks.CHART, self.chart, "slack-chart"),
        ):
            bolt.action(action_id)(answer_button(run, name))

        @bolt.action(blocks.DOWN)
        async def on_down(ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
            await ack()
            audit = button_audit_id(action)
            if audit is None:
                return
            _, channel, thread_ts = action_where(body)
            view = blocks.correction_modal(audit, channel=channel, thread_ts=thread_ts)
            await self._send(client.views_open(trigger_id=body["trigger_id"], view=view))  # trigger ids live 3 s

        def correction_of(
            body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
        ) -> tuple[int, Where, Place] | None:
            """The answer a correction modal is about, and where its thanks go."""
            about = correction_where(body, view)
            if about is None:
                return None
            audit, where, thread_ts = about
            return (
                audit,
                where,
                Place(client, channel=where.channel, thread_ts=thread_ts, user=where.user_id, respond=None),
            )

        @bolt.view(blocks.CORRECTION)
        async def on_correction(ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
            corrected = corrected_sql(view)
            if len(corrected) > MAX_CORRECTION_CHARS:
                await ack(
                    response_action="errors", errors={blocks.CORRECTION_BLOCK: messages.SLACK_CORRECTION_TOO_LONG}
                )
                return
            await ack()
            correcting = correction_of(body, view, client)
            if correcting is not None:
                audit, where, place = correcting
                spawn(self.feedback(audit, where, place, "down", corrected or None), name="slack-feedback")

        @bolt.view_closed(blocks.CORRECTION)
        async def on_correction_cancelled(
            ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
        ) -> None:
            await ack()  # 👎 without a correction is still a 👎
            correcting = correction_of(body, view, client)
            if correcting is not None:
                audit, where, place = correcting
                spawn(self.feedback(audit, where, place, "down", None), name="slack-feedback")

        @bolt.action(blocks.OPTION)
        @bolt.action(blocks.OPTION_MENU)
        async def on_option(
            ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
        ) -> None:
            await ack()
            text = option_text(action)
            if text.strip():
                where, delivery = option_delivery(body, client, respond, text=text)
                self._ask(text, where, delivery)

        @bolt.action(blocks.SCHEMA)
        async def on_schema(
            ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
        ) -> None:
            await ack()
            where, place = _place(body, client, respond)
            spawn(self.schema(action.get("value", ""), where, place), name="slack-schema")

    # --- the work -------------------------------------------------------------------------

    async def preview(self, audit_id: int, where: Where, place: Place) -> None:
        result = await self.ctx.assistant.preview(audit_id, where)
        content, incomplete = blocks.preview_blocks(result, audit_id=audit_id)
        await self._post_in_thread(place, content, text=result.text or messages.SLACK_PREVIEW_TEXT)
        if incomplete:
            upload = place.client.files_upload_v2(
                channel=place.channel,
                thread_ts=place.thread_ts,
                content=blocks.preview_csv(result),
                filename=f"preview-{audit_id}.csv",
                title=messages.slack_preview_file_title(audit_id),
            )
            if not await self._send(upload):
                await self._post_in_thread(
                    place, [blocks.context(messages.SLACK_FILE_FAILED)], text=messages.SLACK_FILE_FAILED
                )

    async def explain(self, audit_id: int, where: Where, place: Place) -> None:
        reply = await self.ctx.assistant.explain(audit_id, where)
        if reply.kind == "error":
            await self._ephemeral(place, reply.text)
            return
        await self._post_in_thread(
            place, blocks.explanation_blocks(reply.text), text=reply.text[: blocks.MAX_TEXT_CHARS]
        )

    async def chart(self, audit_id: int, where: Where, place: Place) -> None:
        """The chart as a PNG file in the answer's thread (``files:write``, like the CSV)."""
        result = await self.ctx.assistant.chart(audit_id, where)
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

    async def schema(self, database: str, where: Where, place: Place) -> None:
        try:
            text = await self.ctx.assistant.schema_text(database, where)
        except Exception as err:  # UnknownDatabase, NotAllowedHere…: their own sentence
            await self._ephemeral(place, messages.user_message(err))
            return
        await self._post_in_thread(
            place, blocks.schema_blocks(database, text), text=messages.slack_schema_text(database)
        )

    async def feedback(self, audit_id: int, where: Where, place: Place, rating: Any, corrected: str | None) -> None:
        reply = await self.ctx.assistant.feedback(audit_id, where, rating, corrected)
        await self._ephemeral(place, reply.text)  # thanks, and whether a correction became an example

    async def _post_in_thread(self, place: Place, content: list[blocks.Block], *, text: str) -> None:
        post = place.client.chat_postMessage(
            channel=place.channel, thread_ts=place.thread_ts, blocks=content, text=text
        )
        if not await self._send(post) and place.respond is not None:
            # Not a member of the channel (an answer sent through a response_url): reply the same way.
            await self._send(
                place.respond(blocks=content, text=text, response_type="in_channel", replace_original=False)
            )

    async def _ephemeral(self, place: Place, text: str) -> None:
        if place.respond is not None:
            await self._send(place.respond(text=text, response_type="ephemeral", replace_original=False))
        else:
            await self._send(
                place.client.chat_postEphemeral(
                    channel=place.channel, user=place.user, text=text, thread_ts=place.thread_ts
                )
            )


def _place(body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond | None) -> tuple[Where, Place]:
    where, channel, thread_ts = action_where(body)
    return where, Place(client, channel=channel, thread_ts=thread_ts, user=where.user_id, respond=respond)
