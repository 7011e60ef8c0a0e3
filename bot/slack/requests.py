"""What a Slack payload means in the core's terms: who asked where (``Where``), what they
typed (Slack's markup undone), which answer a button is about; and where the answer to a
clicked choice goes.

Pure reading of payloads: nothing here calls Slack or the core.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.types import Where
from bot.slack import blocks
from bot.slack.delivery import Delivery, SlashDelivery, ThreadDelivery

PLATFORM = "slack"

_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>")


def from_slack(text: str, *, bot_user_id: str | None = None) -> str:
    """Slack's message markup back to what the user typed: the bot's own mention dropped,
    ``<#C1|general>`` → ``C1`` (admin grant/revoke take channel ids), links unwrapped,
    ``&lt; &gt; &amp;`` unescaped.

    >>> from_slack("<@UBOT> db:shop how many orders &gt; 10?", bot_user_id="UBOT")
    'db:shop how many orders > 10?'
    >>> from_slack("admin grant shop <#C123|sales>")
    'admin grant shop C123'
    """
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[:,]?", " ", text)
    text = _CHANNEL.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return " ".join(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").split())


def command_where(command: dict[str, Any]) -> Where:
    """Scope of a ``/sql`` command: its channel, no thread."""
    return Where(
        platform=PLATFORM, workspace=command["team_id"], channel=command["channel_id"], user_id=command["user_id"]
    )


def message_where(event: dict[str, Any], body: dict[str, Any], thread_ts: str | None) -> Where:
    """Scope of a mention or a message (an assistant thread's included) in ``thread_ts``."""
    return Where(
        platform=PLATFORM,
        workspace=body.get("team_id", ""),
        channel=event["channel"],
        user_id=event["user"],
        thread=thread_ts,
    )


def assistant_thread_where(body: dict[str, Any], thread: dict[str, Any]) -> Where:
    """Scope of an assistant-thread event (``assistant_thread_started``/``_context_changed``)."""
    return Where(
        platform=PLATFORM,
        workspace=body.get("team_id", ""),
        channel=thread["channel_id"],
        user_id=thread.get("user_id", ""),
        thread=thread["thread_ts"],
    )


def action_where(body: dict[str, Any]) -> tuple[Where, str, str | None]:
    """(scope, channel, thread) of a button click on an answer message."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = _channel(body)
    thread_ts = (
        message.get("thread_ts") or container.get("thread_ts") or message.get("ts") or container.get("message_ts")
    )
    where = Where(
        platform=PLATFORM, workspace=_team(body), channel=channel, user_id=body["user"]["id"], thread=thread_ts
    )
    return where, channel, thread_ts


def button_audit_id(action: dict[str, Any]) -> int | None:
    """The answer a button is about (its value), if it names one."""
    value: str = action.get("value", "")
    return int(value) if value.isdigit() else None


def option_text(action: dict[str, Any]) -> str:
    """A clarifying question's clicked choice: a button's value or the overflow menu's pick."""
    text: str = action.get("value") or (action.get("selected_option") or {}).get("value") or ""
    return text


def corrected_sql(view: dict[str, Any]) -> str:
    """What the user typed into the correction modal (empty when nothing)."""
    values = view.get("state", {}).get("values", {})
    typed: str = values.get(blocks.CORRECTION_BLOCK, {}).get(blocks.CORRECTION_INPUT, {}).get("value") or ""
    return typed.strip()


def correction_where(body: dict[str, Any], view: dict[str, Any]) -> tuple[int, Where, str | None] | None:
    """(answer, scope, thread) a correction modal is about, from the modal's metadata."""
    meta = json.loads(view.get("private_metadata") or "{}")
    audit, channel = meta.get("audit_id"), meta.get("channel", "")
    if not isinstance(audit, int):
        return None
    where = Where(platform=PLATFORM, workspace=_team(body), channel=channel, user_id=body["user"]["id"])
    return audit, where, meta.get("thread_ts")


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
    channel = _channel(body)
    team = _team(body)
    if container.get("is_ephemeral") or not message:
        where = Where(platform=PLATFORM, workspace=team, channel=channel, user_id=user)
        return where, SlashDelivery(respond, user=user, question=text)
    thread_ts = message.get("thread_ts") or container.get("thread_ts")
    if thread_ts is None and not channel.startswith("D"):  # a channel message of ours: its thread
        thread_ts = message.get("ts") or container.get("message_ts")
    where = Where(platform=PLATFORM, workspace=team, channel=channel, user_id=user, thread=thread_ts)
    return where, ThreadDelivery(client, channel=channel, thread_ts=thread_ts, user=user)


def _channel(body: dict[str, Any]) -> str:
    channel: str = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
    return channel


def _team(body: dict[str, Any]) -> str:
    team: str = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id", "")
    return team
