"""The Slack events and the command that ask questions, and the app's removal.

- ``/sql …``: the core's grammar. Answers go to the channel through the command's
  ``response_url``; help, admin output and errors only to the user who asked.
- @mentions: answered in a thread; a later message in that thread (no mention needed) is a
  follow-up that keeps the thread's database and passes the last question and SQL along.
- direct messages: every message is a question.
- ``app_uninstalled``/``tokens_revoked``: the workspace's installation is forgotten.

Each listener acknowledges first; the answer runs in the background (``ask``). A message is
claimed once (``claim``): Slack's retries and the twin ``message``/``app_mention`` events of
one message get one answer.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.types import Where
from bot.platform import ServerContext
from bot.slack.delivery import Ask, Claim, SlashDelivery, ThreadDelivery
from bot.slack.requests import command_where, from_slack, message_where
from chat2sql import messages


def register(bolt: AsyncApp, ctx: ServerContext, *, claim: Claim, ask: Ask) -> None:
    """The command and event listeners on ``bolt``."""

    @bolt.command("/sql")
    async def on_sql(ack: Any, command: dict[str, Any], respond: AsyncRespond) -> None:
        text = from_slack(command.get("text", ""))
        await ack(text=messages.SLACK_WORKING, response_type="ephemeral")
        where = command_where(command)
        ask(text, where, SlashDelivery(respond, user=command["user_id"], question=text))

    async def answer_message(event: dict[str, Any], where: Where, context: Any, client: AsyncWebClient) -> None:
        """A mention or a message, claimed once (Slack's retries, the twin events of one
        message) and answered in its thread."""
        if not await claim(f"slack:{where.workspace}:{where.channel}:{event['ts']}"):
            return
        text = from_slack(event.get("text", ""), bot_user_id=context.bot_user_id)
        delivery = ThreadDelivery(client, channel=where.channel, thread_ts=where.thread, user=where.user_id)
        ask(text, where, delivery)

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
        if event.get("channel_type") != "im" and not await ctx.assistant.follows_up(where):
            return
        await answer_message(event, where, context, client)

    @bolt.event("app_uninstalled")
    @bolt.event("tokens_revoked")
    async def on_uninstalled(body: dict[str, Any]) -> None:
        store = bolt.installation_store
        if store is not None:
            await store.async_delete_all(enterprise_id=body.get("enterprise_id"), team_id=body.get("team_id"))
