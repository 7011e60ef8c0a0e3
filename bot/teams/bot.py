"""The Teams turn: one activity in, the core's reply out as an Adaptive Card or text.

Rules: in a team channel or a group chat the bot answers only when @mentioned (the
mention is stripped); in a 1:1 chat every message is a question. Card buttons come back
as messages whose ``value`` carries ``{"chat2sql": ACTION, ...}``; a clarifying question's
choice (``{"chat2sql": "option", "text": ...}``) is the pressing user's next message. A typing indicator goes
out at once; an answer ready within ``reply_window_s`` is posted in the turn, otherwise
the turn ends with a short "working on it" and the answer follows as a proactive message
through the conversation reference kept in the registry database. Each question gets
exactly one final reply: whoever holds the question's outbox lock sends it once.

In a 1:1 chat the turn streams instead (the Agents SDK's ``StreamingResponse``): the question
is recorded as owed first, an answer not ready within ``stream_after_s`` gets informative
updates ("Finding the tables…", "Writing the SQL…"; the latest step only, at the one update
a second Teams takes) and the card as the stream's last message. One stream per chat (a
second question meanwhile takes the channel path), and none past ``stream_limit_s`` (Teams
stops a stream at two minutes): the stream then ends with a note and the answer follows
proactively. A process that dies mid-stream leaves the owed row; the next start answers it.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    Attachment,
    ConversationReference,
    TextFormatTypes,
)
from microsoft_agents.hosting.core import ChannelAdapter, TurnContext
from microsoft_agents.hosting.core.app.streaming import StreamingResponse
from microsoft_agents.hosting.core.authorization import ClaimsIdentity

from bot.core import charts
from bot.core.assistant import Assistant
from bot.core.types import Progress, Reply, Step, Where
from bot.metrics import BotMetrics
from bot.platform import Answers, Background
from bot.teams import cards
from bot.teams.store import Pending, TeamsStore
from chat2sql import errors, messages

log = logging.getLogger(__name__)

PLATFORM = "teams"
REPLY_WINDOW_S = 10.0  # Teams expects the first reply within 15 s
STREAM_AFTER_S = 1.0  # a 1:1 answer ready sooner is one plain message, no stream
STREAM_LIMIT_S = 100.0  # Teams ends a stream after two minutes
_MESSAGE_ID = re.compile(r";messageid=(?P<id>[^;]+)", re.I)
_ADMIN_HERE = re.compile(r"^(?P<head>\s*admin\s+(?:grant|revoke)\s+\S+\s+)here\s*$", re.I)

# The identity a proactive turn runs as (an empty ClaimsIdentity: anonymous, no token).
ClaimsFactory = Callable[[], ClaimsIdentity]


class _Updates:
    """A streamed answer's informative updates: only the latest step is sent, at the pace the
    stream allows (each send waits out Teams' one-second interval), so no stale step queues up
    in front of the answer."""

    def __init__(self, stream: StreamingResponse) -> None:
        self._stream = stream
        self._latest = messages.TEAMS_STREAM_START
        self._shown: str | None = None
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def started(self) -> bool:
        return self._pump is not None

    def show(self, text: str) -> None:
        self._latest = text[: messages.INFORMATIVE_UPDATE_CHARS]
        self._wake.set()

    async def step(self, step: Step) -> None:
        phrase = messages.PROGRESS[step]
        self.show(phrase[:1].upper() + phrase[1:])

    def start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run(), name="teams-stream-updates")

    async def _run(self) -> None:
        while not self._closing:
            if self._latest == self._shown:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._shown = self._latest
            self._stream.queue_informative_update(self._shown)
            await self._stream.wait_for_queue()

    async def end(self, activity: Activity) -> None:
        """The stream's last message: ``activity``'s text (a short line for a card) and card."""
        self._closing = True
        self._wake.set()
        if self._pump is not None:
            await self._pump
        self._stream.queue_text_chunk(activity.text or messages.TEAMS_STREAM_ANSWER)
        if activity.attachments:
            self._stream.set_attachments(list(activity.attachments))
        await self._stream.end_stream()


class _Outbox:
    """Where one question's messages go: into its turn while the turn lasts (as a stream's
    updates and last message, when it streams), then proactively."""

    def __init__(self, context: TurnContext, proactive: Callable[[Activity], Awaitable[bool]]) -> None:
        self.context: TurnContext | None = context
        self.proactive = proactive
        self.lock = asyncio.Lock()
        self.final_sent = False
        self.notified = False
        self.pending_id: int | None = None
        self.updates: _Updates | None = None

    @property
    def progress(self) -> Progress | None:
        return self.updates.step if self.updates is not None else None

    async def send(self, activity: Activity) -> bool:
        if self.context is None:
            return await self.proactive(activity)
        if self.updates is None or not self.updates.started:
            await self.context.send_activity(activity)
            return True
        try:
            await self.updates.end(activity)
            return True
        except Exception:  # the stream broke: the answer still goes out, once
            log.warning("the Teams stream could not be ended; answering proactively", exc_info=True)
            return await self.proactive(activity)

    async def notify(self, text: str) -> None:
        """The core's interim notice (a worker warming up); it replaces "working on it"."""
        async with self.lock:
            if self.final_sent:
                return
            if self.updates is not None and self.context is not None:
                self.updates.start()  # worth showing at once
                self.updates.show(text)
                return
            self.notified = True
            await self.send(_text(text))


class TeamsBot:
    """The SDK's ``Agent``: ``on_turn`` for each activity, plus proactive delivery."""

    def __init__(
        self,
        *,
        assistant: Assistant,
        store: TeamsStore,
        adapter: ChannelAdapter,
        claims: ClaimsFactory,
        metrics: BotMetrics,
        background: Background,
        reply_window_s: float = REPLY_WINDOW_S,
        streaming: bool = True,
        stream_after_s: float = STREAM_AFTER_S,
        stream_limit_s: float = STREAM_LIMIT_S,
    ) -> None:
        self._assistant = assistant
        self._store = store
        self._adapter = adapter
        self._claims = claims
        self._metrics = metrics
        self._background = background
        self.reply_window_s = reply_window_s
        self.streaming = streaming
        self.stream_after_s = stream_after_s
        self.stream_limit_s = stream_limit_s
        self._streams: set[str] = set()  # conversations with a stream open: Teams allows one each
        self._answers = Answers(PLATFORM, assistant=assistant, metrics=metrics)

    # --- the turn -----------------------------------------------------------------------

    async def on_turn(self, context: TurnContext) -> None:
        activity = context.activity
        if activity.type not in (ActivityTypes.message, ActivityTypes.conversation_update):
            return
        if activity.conversation is None or not activity.conversation.id:
            return
        await asyncio.to_thread(
            self._store.save_reference,
            activity.conversation.id,
            activity.get_conversation_reference().model_dump_json(by_alias=True, exclude_none=True),
        )
        if activity.type != ActivityTypes.message:
            return
        value = activity.value
        if isinstance(value, dict) and "chat2sql" in value:
            if await self._first_delivery(activity):
                await self._on_action(context, value)
            return
        text = question_text(activity)
        if text is None or not await self._first_delivery(activity):
            return
        where = where_of(activity)
        match = _ADMIN_HERE.match(text)
        if match:  # "admin grant NAME here": Teams users cannot see a channel's id
            text = match["head"] + where.channel
        await context.send_activity(Activity(type=ActivityTypes.typing))
        await self._question(context, text, where)

    async def _first_delivery(self, activity: Activity) -> bool:
        """False for the Bot Connector's retry of an activity already taken."""
        if not activity.id or activity.conversation is None:
            return True
        return await self._answers.claim(f"{PLATFORM}:{activity.conversation.id}:{activity.id}")

    # --- questions ----------------------------------------------------------------------

    async def _question(self, context: TurnContext, text: str, where: Where) -> None:
        activity = context.activity
        assert activity.conversation is not None
        conversation_id, reply_to = activity.conversation.id, activity.id

        async def proactive(out: Activity) -> bool:
            return await self.send_proactive(conversation_id, reply_to, out)

        outbox = _Outbox(context, proactive)
        if self._may_stream(context):
            await self._streamed(context, outbox, text, where)
            return
        task = self._background.spawn(self._produce(outbox, text, where), name="teams-answer")
        done, _ = await asyncio.wait({task}, timeout=self.reply_window_s)
        if task in done:
            return
        async with outbox.lock:
            if outbox.final_sent:
                return
            outbox.pending_id = await asyncio.to_thread(
                self._store.add_pending, conversation_id=conversation_id, activity_id=reply_to, text=text, where=where
            )
            try:
                if not outbox.notified:
                    await context.send_activity(_text(messages.TEAMS_WORKING))
            finally:
                outbox.context = None  # the turn ends here: the rest goes proactively

    def _may_stream(self, context: TurnContext) -> bool:
        conversation = context.activity.conversation
        return (
            self.streaming
            and conversation is not None
            and conversation.conversation_type == "personal"
            and conversation.id not in self._streams
            and context.streaming_response.is_streaming_channel
        )

    async def _streamed(self, context: TurnContext, outbox: _Outbox, text: str, where: Where) -> None:
        """A 1:1 question: progress as a Teams stream, the answer as its last message."""
        activity = context.activity
        assert activity.conversation is not None
        conversation_id = activity.conversation.id
        self._streams.add(conversation_id)
        try:
            # Owed before anything is shown: from here on, a restart still answers it.
            outbox.pending_id = await asyncio.to_thread(
                self._store.add_pending,
                conversation_id=conversation_id,
                activity_id=activity.id,
                text=text,
                where=where,
            )
            updates = outbox.updates = _Updates(context.streaming_response)
            task = self._background.spawn(self._produce(outbox, text, where), name="teams-answer")
            done, _ = await asyncio.wait({task}, timeout=self.stream_after_s)
            if task in done:
                return
            async with outbox.lock:
                if not outbox.final_sent:
                    updates.start()
            done, _ = await asyncio.wait({task}, timeout=max(0.0, self.stream_limit_s - self.stream_after_s))
            if task in done:
                return
            async with outbox.lock:
                if outbox.final_sent:
                    return
                try:
                    await updates.end(_text(messages.TEAMS_STREAM_TOO_LONG))
                except Exception:
                    log.warning("the Teams stream could not be ended", exc_info=True)
                finally:
                    outbox.context = None  # the answer follows proactively
        finally:
            self._streams.discard(conversation_id)

    async def _produce(self, outbox: _Outbox, text: str, where: Where) -> None:
        reply, started = await self._ask(text, where, outbox.notify, outbox.progress)
        async with outbox.lock:
            owed = outbox.pending_id  # set once the answer is owed past the turn (or streamed)
            if owed is not None and not await asyncio.to_thread(self._store.take_pending, owed):
                return  # a restarted replica answered it already
            await self._final(outbox.send, reply, started)
            outbox.final_sent = True

    async def resume(self, pending: Pending) -> None:
        """Answer a question whose answer a restart lost (see ``TeamsStore.pending``)."""
        reply, started = await self._ask(pending.text, pending.where, None)
        if not await asyncio.to_thread(self._store.take_pending, pending.id):
            return

        async def send(out: Activity) -> bool:
            return await self.send_proactive(pending.conversation_id, pending.activity_id, out)

        await self._final(send, reply, started)

    async def _ask(
        self,
        text: str,
        where: Where,
        notify: Callable[[str], Awaitable[None]] | None,
        progress: Progress | None = None,
    ) -> tuple[Reply, float]:
        return await self._answers.run(lambda: self._assistant.handle(text, where, notify=notify, progress=progress))

    async def _final(self, send: Callable[[Activity], Awaitable[bool]], reply: Reply, started: float) -> None:
        await self._answers.deliver(lambda: send(render(reply)), reply, started)

    # --- card buttons ---------------------------------------------------------------------

    async def _on_action(self, context: TurnContext, value: dict[str, Any]) -> None:
        where = where_of(context.activity)
        action = value.get("chat2sql")
        if action == cards.OPTION:  # a clarifying question's choice: the user's next message
            text = str(value.get("text") or "").strip()
            if not text:
                await context.send_activity(_text(messages.TEAMS_UNKNOWN_ACTION))
                return
            await context.send_activity(Activity(type=ActivityTypes.typing))
            await self._question(context, text, where)
            return
        try:
            audit_id = int(value.get("audit_id", ""))
        except (TypeError, ValueError):
            action = None
        if action not in cards.ACTIONS:
            await context.send_activity(_text(messages.TEAMS_UNKNOWN_ACTION))
            return
        await context.send_activity(Activity(type=ActivityTypes.typing))
        try:
            out = await self._action(action, audit_id, value, where)
        except errors.Chat2SQLError as err:
            out = _text(messages.user_message(err))
        except Exception:
            log.exception("teams card action failed")
            out = _text(messages.user_message(Exception()))
        await context.send_activity(out)

    async def _action(self, action: str, audit_id: int, value: dict[str, Any], where: Where) -> Activity:
        if action == "preview":
            preview = await self._assistant.preview(audit_id, where)
            return _card(cards.preview_card(preview, audit_id=audit_id)) if preview.ok else _text(preview.text)
        if action == "explain":
            reply = await self._assistant.explain(audit_id, where)
            return _card(cards.explanation_card(reply.text)) if reply.kind != "error" else _text(reply.text)
        if action == "chart":
            drawn = await self._assistant.chart(audit_id, where, max_bytes=charts.TEAMS_MAX_PNG_BYTES)
            return _card(cards.chart_card(drawn.text, drawn.png)) if drawn.ok else _text(drawn.text)
        if action == "schema":
            database = await self._assistant.answered_database(audit_id) or str(value.get("database", ""))
            schema = await self._assistant.schema_text(database, where)
            return _card(cards.schema_card(database, schema))
        rating: Literal["up", "down"] = "up" if action == "up" else "down"
        corrected = str(value.get("corrected_sql") or "").strip() or None if rating == "down" else None
        if corrected is not None and len(corrected) > cards.MAX_CORRECTION_CHARS:
            return _text(messages.TEAMS_CORRECTION_TOO_LONG)
        reply = await self._assistant.feedback(audit_id, where, rating, corrected)
        return _text(reply.text)

    # --- proactive messages ---------------------------------------------------------------

    async def send_proactive(self, conversation_id: str, reply_to: str | None, activity: Activity) -> bool:
        """Post ``activity`` into a conversation outside any turn (as a reply to ``reply_to``)."""
        stored = await asyncio.to_thread(self._store.reference, conversation_id)
        if stored is None:
            log.warning("no conversation reference for a proactive reply")
            return False
        continuation = ConversationReference.model_validate_json(stored).get_continuation_activity()
        continuation.id = reply_to  # the reply threads under the question
        sent = False

        async def callback(context: TurnContext) -> None:
            nonlocal sent
            await context.send_activity(activity)
            sent = True

        await self._adapter.continue_conversation_with_claims(self._claims(), continuation, callback)
        return sent


# --- translation ----------------------------------------------------------------------------


def question_text(activity: Activity) -> str | None:
    """The question in a message, or None when the bot was not addressed."""
    conversation_type = activity.conversation.conversation_type if activity.conversation else None
    if conversation_type != "personal" and not activity.is_recipient_mentioned():
        return None
    text = activity.remove_recipient_mention() if activity.is_recipient_mentioned() else activity.text or ""
    text = html.unescape(re.sub(r"</?(?:p|div|span|br)\b[^>]*>", " ", text)).replace("\xa0", " ")
    return text.strip()


def where_of(activity: Activity) -> Where:
    """Scope of a Teams activity: tenant, conversation without its ``;messageid=``, AAD user,
    and in a channel the reply chain's root message (follow-ups in a thread keep context)."""
    conversation = activity.conversation
    assert conversation is not None
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = conversation.tenant_id or (channel_data.get("tenant") or {}).get("id") or "unknown"
    sender = activity.from_property
    user = (sender.aad_object_id or sender.id) if sender else "unknown"
    thread = None
    if conversation.conversation_type == "channel":
        root = _MESSAGE_ID.search(conversation.id)
        thread = root["id"] if root else activity.id
    return Where(
        platform=PLATFORM,
        workspace=str(tenant),
        channel=conversation.id.split(";", 1)[0],
        user_id=str(user),
        thread=thread,
    )


def render(reply: Reply) -> Activity:
    if reply.answer is not None:
        return _card(cards.answer_card(reply.answer))
    if reply.options:
        return _card(cards.options_card(reply.text, reply.options))
    return _text(reply.text)


def _text(text: str) -> Activity:
    return Activity(type=ActivityTypes.message, text=text, text_format=TextFormatTypes.markdown)


def _card(card: cards.Card) -> Activity:
    attachment = Attachment(content_type=cards.CONTENT_TYPE, content=card)
    return Activity(type=ActivityTypes.message, attachments=[attachment])
