"""Slack's Agents & AI Apps surface: chat2sql in the assistant side panel, on Bolt's own
``AsyncAssistant`` middleware (it takes assistant-thread events before any other listener).

- ``assistant_thread_started``: a greeting that names the databases this user may ask about
  (the one the viewed channel defaults to marked), and suggested prompts from the user's
  most-used databases and verified examples (an admin's, or from their own questions).
- a message in the thread: the same question flow and Block Kit answer as a mention in a
  thread, follow-ups included; while it runs, the thread's status line shows each step
  ("chat2sql is writing the SQL…"), cleared once the answer is posted; the thread's title is
  its first question.
- ``assistant_thread_context_changed``: the user moved to another channel. Its default
  database is what the thread asks next (a thread that was on another database starts over).

The database is checked against the assistant conversation itself (the app's DM with the
user), where the answer is shown: the viewed channel only chooses among those.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAssistant
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.assistant import Assistant
from bot.core.text import cut
from bot.core.types import Where
from bot.slack.delivery import Ask, AssistantDelivery, Claim, Delivery, Send, quietly
from bot.slack.requests import PLATFORM, assistant_thread_where, from_slack, message_where
from bot.slack.threads import ThreadContextStore
from chat2sql import messages

MAX_TITLE_CHARS = 80


def build_assistant(
    core: Assistant, store: ThreadContextStore, *, claim: Claim, ask: Ask, send: Send
) -> AsyncAssistant:
    """The assistant-thread listeners: ``claim`` takes a delivery once, ``ask`` answers in the
    background, ``send`` makes a Slack call whose failure is counted and logged."""
    assistant = AsyncAssistant(thread_context_store=store, logger=logging.getLogger("bot.slack.bolt"))

    async def viewed_default(where: Where, context: dict[str, Any] | None) -> str | None:
        """The default database of the channel the user is viewing, if any."""
        channel = (context or {}).get("channel_id")
        if not channel:
            return None
        viewed = Where(platform=PLATFORM, workspace=where.workspace, channel=str(channel), user_id=where.user_id)
        return await core.channel_default(viewed)

    @assistant.thread_started
    async def on_thread_started(
        payload: dict[str, Any], body: dict[str, Any], say: Any, client: AsyncWebClient
    ) -> None:
        thread = payload["assistant_thread"]
        where = assistant_thread_where(body, thread)
        context = thread.get("context") or {}
        if context.get("channel_id"):
            await store.save(channel_id=where.channel, thread_ts=str(where.thread), context=context)
        usable = await core.usable_databases(where)
        if not usable:
            await send(say(text=messages.SLACK_ASSISTANT_NONE))
            return
        default = await viewed_default(where, context)
        greeting = messages.slack_assistant_greeting(
            [(e.name, e.description) for e in usable], default=default if default in {e.name for e in usable} else None
        )
        await send(say(text=greeting))
        prompts = await core.suggested_prompts(where)
        if prompts:
            await quietly(
                client.assistant_threads_setSuggestedPrompts(
                    channel_id=where.channel,
                    thread_ts=str(where.thread),
                    title=messages.SLACK_ASSISTANT_PROMPTS_TITLE,
                    prompts=[{"title": p.label, "message": p.text} for p in prompts],
                )
            )

    @assistant.thread_context_changed
    async def on_context_changed(payload: dict[str, Any], body: dict[str, Any]) -> None:
        thread = payload["assistant_thread"]
        where = assistant_thread_where(body, thread)
        context = thread.get("context") or {}
        if not context.get("channel_id"):
            return
        await store.save(channel_id=where.channel, thread_ts=str(where.thread), context=context)
        await core.start_over(where, await viewed_default(where, context))

    @assistant.user_message
    async def on_user_message(
        payload: dict[str, Any], body: dict[str, Any], context: Any, client: AsyncWebClient
    ) -> None:
        if payload.get("subtype") or "user" not in payload:
            return
        where = message_where(payload, body, payload["thread_ts"])
        thread_ts = str(where.thread)
        if not await claim(f"slack:{where.workspace}:{where.channel}:{payload['ts']}"):
            return
        text = from_slack(payload.get("text", ""), bot_user_id=context.bot_user_id)
        preferred = await viewed_default(where, await store.find(channel_id=where.channel, thread_ts=thread_ts))
        if text and await claim(f"slack-title:{where.workspace}:{where.channel}:{thread_ts}"):
            title = cut(text, MAX_TITLE_CHARS)
            await quietly(client.assistant_threads_setTitle(channel_id=where.channel, thread_ts=thread_ts, title=title))
        delivery: Delivery = AssistantDelivery(client, channel=where.channel, thread_ts=thread_ts, user=where.user_id)
        ask(text, where, delivery, preferred=preferred)

    return assistant
