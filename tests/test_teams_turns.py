"""Teams turns in process: the SDK's TurnContext over a recording adapter, the real core
with an instant scripted model, and the registry database on a real SQLite file."""

from __future__ import annotations

import asyncio

import pytest
from microsoft_agents.activity import Activity

from bot.core.assistant import PreviewReply
from bot.store import Where
from bot.teams import cards
from bot.teams.bot import question_text, where_of
from chat2sql import messages
from chat2sql.ratelimit import Limit
from chat2sql.settings import Settings
from inference.client import WorkerColdStarting
from tests.support.clients import ScriptedClient
from tests.support.teams import (
    ADMIN_AAD,
    RIG_SQL,
    TEAM_CHANNEL,
    TENANT,
    Rig,
    SlowClient,
    card_action,
    card_in,
    card_problems,
    channel_message,
    group_message,
    messages_of,
    personal_message,
    teams_rig,
)

SQL = RIG_SQL  # what the ``rig`` fixture's model answers


# --- addressing -------------------------------------------------------------------------------


def test_where_strips_the_thread_suffix_and_keeps_the_root() -> None:
    reply = Activity.model_validate(channel_message("hi", id="1700000000009", root="1700000000001"))
    where = where_of(reply)
    assert where == Where(
        platform="teams", workspace=TENANT, channel=TEAM_CHANNEL, user_id="aad-alice", thread="1700000000001"
    )
    assert where_of(Activity.model_validate(personal_message("hi"))).thread is None
    assert question_text(Activity.model_validate(channel_message("how&nbsp;many &amp; more?"))) == "how many & more?"


@pytest.mark.asyncio
async def test_channel_mention_gets_an_answer_card_in_the_thread(rig: Rig) -> None:
    await rig.turn(channel_message("who works here?"))
    typing, answer = rig.adapter.sent
    assert typing.type == "typing"
    assert answer.reply_to_id == "1700000000001"  # threads under the question
    assert answer.conversation is not None and answer.conversation.id.endswith(";messageid=1700000000001")
    card = card_in(answer)
    sql_runs = [r["text"] for b in card["body"] if b["type"] == "RichTextBlock" for r in b["inlines"]]
    assert sql_runs == [SQL + " LIMIT 50"]
    facts = next(b for b in card["body"] if b["type"] == "FactSet")["facts"]
    assert {"title": "Database", "value": "hr"} in facts and any(f["title"] == "Latency" for f in facts)
    titles = [a["title"] for a in card["actions"]]
    assert titles == ["Run preview", "Explain", "👍", "👎", "Show schema"]
    audit = rig.assistant.store.audit(limit=1)[0]
    assert (audit.platform, audit.workspace, audit.channel, audit.user_id) == (
        "teams",
        TENANT,
        TEAM_CHANNEL,
        "aad-alice",
    )
    assert audit.question == "who works here?"


@pytest.mark.asyncio
async def test_channel_and_group_without_mention_are_ignored(rig: Rig) -> None:
    await rig.turn(channel_message("who works here?", mention=False))
    await rig.turn(group_message("who works here?", mention=False))
    assert rig.adapter.sent == [] and rig.client.requests == []
    await rig.turn(group_message("who works here?", mention=True))
    assert len(messages_of(rig.adapter.sent)) == 1 and len(rig.client.requests) == 1


@pytest.mark.asyncio
async def test_personal_chat_every_message_is_a_question(rig: Rig) -> None:
    await rig.turn(personal_message("list employees"))
    (answer,) = messages_of(rig.adapter.sent)
    card_in(answer)
    await rig.turn(personal_message("help", id="1700000000202"))
    assert "Ask me a question" in (messages_of(rig.adapter.sent)[-1].text or "")


@pytest.mark.asyncio
async def test_follow_up_in_a_thread_keeps_context(rig: Rig) -> None:
    await rig.turn(channel_message("who works here?"))
    await rig.turn(channel_message("only the first one", id="1700000000002", root="1700000000001"))
    await rig.turn(channel_message("new topic", id="1700000000003"))
    first, follow_up, fresh = rig.client.requests
    assert first.context is None and fresh.context is None
    assert follow_up.context is not None and follow_up.context.question == "who works here?"


@pytest.mark.asyncio
async def test_retried_delivery_is_answered_once(rig: Rig) -> None:
    await rig.turn(channel_message("who works here?"))
    await rig.turn(channel_message("who works here?"))  # the Bot Connector's retry: same id
    assert len(messages_of(rig.adapter.sent)) == 1 and len(rig.client.requests) == 1


# --- card buttons -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_card_actions_preview_feedback_and_schema(rig: Rig) -> None:
    await rig.turn(channel_message("who works here?"))
    audit_id = rig.assistant.store.audit(limit=1)[0].id
    data = {a["title"]: a for a in card_in(messages_of(rig.adapter.sent)[0])["actions"]}

    await rig.turn(card_action(data["Run preview"]["data"], id="a1"))
    preview = card_in(messages_of(rig.adapter.sent)[-1])
    table = preview["body"][0]
    assert table["type"] == "Table" and len(table["rows"]) == 1 + 7  # header + every employee
    assert table["rows"][1]["cells"][0]["items"][0]["text"] == "Ada"
    assert rig.assistant.store.get(audit_id).preview_rows == 7  # type: ignore[union-attr]

    await rig.turn(card_action(data["👍"]["data"], id="a2"))
    assert messages_of(rig.adapter.sent)[-1].text == messages.feedback_thanks("up")
    down = dict(data["👎"]["card"]["actions"][0]["data"], corrected_sql="SELECT name FROM employees")
    await rig.turn(card_action(down, id="a3"))
    ratings = [(f.rating, f.corrected_sql) for f in rig.assistant.store.feedback_for(audit_id)]
    assert ratings == [("up", None), ("down", "SELECT name FROM employees")]

    await rig.turn(card_action(data["Show schema"]["data"], id="a4"))
    schema = card_in(messages_of(rig.adapter.sent)[-1])
    assert "employees" in schema["body"][1]["inlines"][0]["text"]

    await rig.turn(card_action({"chat2sql": "frobnicate", "audit_id": audit_id}, id="a5"))
    assert messages_of(rig.adapter.sent)[-1].text == messages.TEAMS_UNKNOWN_ACTION
    await rig.turn(card_action({"chat2sql": "preview", "audit_id": 999_999}, id="a6"))
    assert "no longer be previewed" in (messages_of(rig.adapter.sent)[-1].text or "")
    assert len(rig.client.requests) == 1  # buttons never ask the model


def test_preview_card_stays_far_under_the_message_limit() -> None:
    wide = tuple(f"c{i}" for i in range(20))
    rows = tuple(tuple("x" * 500 for _ in wide) for _ in range(500))
    card = cards.preview_card(PreviewReply(ok=True, text="", columns=wide, rows=rows, truncated=True, elapsed_ms=3))
    assert card_problems(card) == [] and cards.card_bytes(card) <= cards.MAX_CARD_BYTES
    table, note = card["body"]
    assert len(table["columns"]) == cards.MAX_COLUMNS and 1 < len(table["rows"]) < 500
    assert "cut to fit" in note["text"] and "row limit" in note["text"]
    small = cards.preview_card(PreviewReply(ok=True, text="", columns=("a",), rows=((1,),), elapsed_ms=1))
    assert "cut" not in small["body"][1]["text"]


# --- admin, limits, errors --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_admin_commands_allowed_and_refused(rig: Rig) -> None:
    await rig.turn(channel_message("admin revoke hr here", user="aad-alice"))
    assert "only chat2sql admins" in (messages_of(rig.adapter.sent)[-1].text or "")
    await rig.turn(channel_message("admin revoke hr here", id="1700000000010", user=ADMIN_AAD))
    assert messages_of(rig.adapter.sent)[-1].text == messages.granted("hr", TEAM_CHANNEL, False)
    await rig.turn(channel_message("who works here?", id="1700000000011"))
    assert "not available in this channel" in (messages_of(rig.adapter.sent)[-1].text or "")
    await rig.turn(channel_message("admin list", id="1700000000012", user=ADMIN_AAD))
    assert "hr" in (messages_of(rig.adapter.sent)[-1].text or "")


@pytest.mark.asyncio
async def test_rate_limit_is_a_friendly_message(settings: Settings, sqlite_url: str) -> None:
    r = await teams_rig(settings, sqlite_url, ScriptedClient([SQL]), user_limit=Limit(1, 1))
    await r.turn(channel_message("q1", id="1"))
    await r.turn(channel_message("q2", id="2"))
    last = messages_of(r.adapter.sent)[-1]
    assert last.text is not None and "Easy there" in last.text and not last.attachments
    await r.assistant.close()


@pytest.mark.asyncio
async def test_errors_never_echo_exceptions(settings: Settings, sqlite_url: str) -> None:
    r = await teams_rig(settings, sqlite_url, ScriptedClient([RuntimeError("postgresql://u:Leak9@db/x")]))
    await r.turn(channel_message("q"))
    (reply,) = messages_of(r.adapter.sent)
    assert reply.text == messages.user_message(Exception()) and "Leak9" not in str(reply.model_dump())
    await r.assistant.close()


# --- slow answers -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_slow_answer_follows_proactively_exactly_once(settings: Settings, sqlite_url: str) -> None:
    r = await teams_rig(settings, sqlite_url, SlowClient([SQL], delay_s=0.3))
    r.bot.reply_window_s = 0.05
    await r.turn(channel_message("who works here?"))
    assert [a.text for a in messages_of(r.adapter.sent)] == [messages.TEAMS_WORKING]
    assert len(r.store.pending()) == 1  # owed, and would survive a restart
    await r.background.drain()
    (answer,) = messages_of(r.adapter.proactive)
    card_in(answer)
    assert answer.reply_to_id == "1700000000001" and answer.conversation.id.endswith(";messageid=1700000000001")
    assert r.store.pending() == [] and len(messages_of(r.adapter.sent)) == 1
    await r.assistant.close()


@pytest.mark.asyncio
async def test_warming_worker_notice_then_the_answer(settings: Settings, sqlite_url: str) -> None:
    r = await teams_rig(settings, sqlite_url, ScriptedClient([WorkerColdStarting(retry_after_s=0.01), SQL]))
    await r.turn(channel_message("who works here?"))
    notice, answer = messages_of(r.adapter.sent)
    assert notice.text == WorkerColdStarting().message and answer.attachments
    await r.assistant.close()


@pytest.mark.asyncio
async def test_owed_answers_are_resumed_after_a_restart(rig: Rig) -> None:
    await rig.turn(personal_message("hello"))  # stores the conversation reference
    where = where_of(Activity.model_validate(personal_message("x")))
    pending_id = rig.store.add_pending(
        conversation_id="a:1personal-aad-alice", activity_id="1700000000201", text="who works here?", where=where
    )
    (owed,) = rig.store.pending()
    await asyncio.gather(rig.bot.resume(owed), rig.bot.resume(owed))  # two replicas: one reply
    (answer,) = messages_of(rig.adapter.proactive)
    card_in(answer)
    assert answer.reply_to_id == "1700000000201" and not rig.store.take_pending(pending_id)
