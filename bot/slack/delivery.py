"""Where a Slack question's messages go: the ``/sql`` command's ``response_url``, a thread
(a mention, a message, a DM), or an assistant thread with its status line; and the shapes of
the platform's answering calls the listeners are handed (``Claim``, ``Ask``, ``Send``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.assistant import Progress, Reply, Step
from bot.slack import blocks
from chat2sql import messages

log = logging.getLogger(__name__)

Claim = Callable[[str], Awaitable[bool]]  # first delivery of this key? (Slack retries, twin events)
Ask = Callable[..., None]  # (text, where, delivery, *, preferred) → answered in the background
Send = Callable[[Awaitable[Any]], Awaitable[bool]]  # one Slack call; a failure counted and logged


class Delivery(Protocol):
    """Where a question's notices, its progress (where a surface shows it) and its one final reply go."""

    progress: Progress | None

    async def notice(self, text: str) -> None: ...

    async def final(self, reply: Reply) -> None: ...


class SlashDelivery:
    """A ``/sql`` command: the answer to the channel, anything else to the asker alone."""

    progress: Progress | None = None

    def __init__(self, respond: AsyncRespond, *, user: str, question: str) -> None:
        self._respond = respond
        self._user = user
        self._question = question

    async def notice(self, text: str) -> None:
        await self._respond(text=text, response_type="ephemeral", replace_original=False)

    async def final(self, reply: Reply) -> None:
        if reply.answer is not None:
            await self._respond(
                text=blocks.answer_text(reply.answer),
                blocks=blocks.answer_blocks(reply.answer, asked_by=self._user, question=self._question),
                response_type="in_channel",
                replace_original=False,
            )
        else:
            await self._respond(
                text=reply.text[: blocks.MAX_TEXT_CHARS],
                blocks=blocks.reply_blocks(reply.text, reply.options),
                response_type="ephemeral",
                replace_original=False,
            )


class ThreadDelivery:
    """A mention or a message: replies in its thread (a DM's top level when it has none)."""

    progress: Progress | None = None

    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str | None, user: str) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._user = user

    async def notice(self, text: str) -> None:
        await self._client.chat_postEphemeral(
            channel=self._channel, user=self._user, text=text, thread_ts=self._thread_ts
        )

    async def final(self, reply: Reply) -> None:
        if reply.answer is not None:
            text, content = blocks.answer_text(reply.answer), blocks.answer_blocks(reply.answer)
        else:
            text, content = reply.text[: blocks.MAX_TEXT_CHARS], blocks.reply_blocks(reply.text, reply.options)
        if reply.error_kind == "RateLimited":  # only the asker needs to know
            await self._client.chat_postEphemeral(
                channel=self._channel, user=self._user, thread_ts=self._thread_ts, text=text, blocks=content
            )
        else:
            await self._client.chat_postMessage(
                channel=self._channel, thread_ts=self._thread_ts, text=text, blocks=content
            )


class AssistantDelivery:
    """An assistant thread (Slack's AI-app panel): the answer posted in it as in any thread,
    the thread's status line showing each step until then."""

    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str, user: str) -> None:
        self._thread = ThreadDelivery(client, channel=channel, thread_ts=thread_ts, user=user)
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self.progress: Progress | None = self._progress

    async def notice(self, text: str) -> None:
        await self._thread.notice(text)

    async def _progress(self, step: Step) -> None:
        await self.status(f"is {messages.PROGRESS[step]}")

    async def final(self, reply: Reply) -> None:
        try:
            await self._thread.final(reply)
        finally:
            await self.status("")  # Slack clears it on our reply too; this covers a failed post

    async def status(self, text: str) -> None:
        await quietly(
            self._client.assistant_threads_setStatus(channel_id=self._channel, thread_ts=self._thread_ts, status=text)
        )


async def quietly(call: Any) -> None:
    """An assistant-panel call (status, title, prompts): outside an assistant thread, or
    without ``assistant:write``, Slack refuses it; the answer goes on regardless."""
    try:
        await call
    except (TimeoutError, SlackApiError, SlackClientError, OSError) as err:
        log.info("an assistant-thread call was refused", extra={"fields": {"error": api_error(err)}})


def api_error(err: BaseException) -> str:
    """What a failed Slack call reports: Slack's error code, or the exception's type."""
    if isinstance(err, SlackApiError):
        return str(err.response.get("error", "unknown"))
    return type(err).__name__
