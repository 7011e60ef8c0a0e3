"""Slack's Agents & AI Apps surface against the fake Slack Web API, with signed requests:
a whole assistant thread (greeting, suggested prompts, status steps, the answer, the status
cleared, the title), the viewed channel choosing the database, and its change switching it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core.types import AuditRecord, Where
from chat2sql import messages
from chat2sql.settings import Settings
from tests.support.fake_slack import Call
from tests.support.slack import ADMIN_USER, SlackHarness, running_slack

pytestmark = pytest.mark.asyncio

SQL = "SELECT name FROM employees ORDER BY id"
DM = "D-alice"
THREAD = "1720000000.000100"


def _started(context_channel: str | None, *, user: str = "U-alice") -> dict[str, Any]:
    context = {"channel_id": context_channel, "team_id": "T1"} if context_channel else {}
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": user, "context": context, "channel_id": DM, "thread_ts": THREAD},
        "event_ts": "1720000000.000101",
    }


def _changed(context_channel: str) -> dict[str, Any]:
    event = _started(context_channel)
    event["type"] = "assistant_thread_context_changed"
    return event


def _message(h: SlackHarness, text: str) -> dict[str, Any]:
    ts = h.next_ts()
    return {"type": "message", "channel_type": "im", "user": "U-alice", "text": text, "ts": ts,
            "thread_ts": THREAD, "channel": DM, "event_ts": ts}  # fmt: skip


def _panel(calls: list[Call]) -> list[tuple[str, str]]:
    """The assistant-panel and message calls, in order, each with what it showed."""
    shown = []
    for c in calls:
        if c.method == "assistant.threads.setStatus":
            shown.append((c.method, c.body["status"]))
        elif c.method == "chat.postMessage":
            shown.append((c.method, str(c.body.get("text", ""))))
    return shown


async def _setup(h: SlackHarness, sqlite_url: str) -> None:
    """Two databases: hr (the default of #general) and shop (the default of #sales); an
    admin's verified example on hr, and Bob's own verified question on shop."""
    admin = Where(platform="slack", workspace="T1", channel="C-general", user_id=ADMIN_USER)
    assert "Registered" in (await h.assistant.handle(f"admin register shop {sqlite_url} Orders", admin)).text
    await h.assistant.handle("use hr", admin)
    await h.assistant.handle("use shop", Where(platform="slack", workspace="T1", channel="C-sales", user_id="U-x"))
    schema_hash = h.assistant.registry.get("hr").schema_hash
    h.assistant.store.add_example(database="hr", question="Who joined most recently?", sql=SQL, source="admin",
                                  created_by=ADMIN_USER, schema_hash=schema_hash)  # fmt: skip
    bob = h.assistant.store.record(
        AuditRecord(platform="slack", workspace="T1", channel="D-bob", user_id="U-bob",
                    question="Bob's private question about salaries", trace_id="t", database="shop", sql=SQL)
    )  # fmt: skip
    h.assistant.store.add_example(database="shop", question="Bob's private question about salaries", sql=SQL,
                                  source="thumbs_up", created_by="U-bob", audit_id=bob,
                                  schema_hash=h.assistant.registry.get("shop").schema_hash)  # fmt: skip


async def test_a_whole_assistant_thread(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url, answers=[SQL] * 4) as h:
        await _setup(h, sqlite_url)

        response, _ = await h.event(_started("C-sales"), event_id="EvStart")
        assert response.status_code == 200
        await h.fake.wait_for(lambda f: bool(f.of("assistant.threads.setSuggestedPrompts")))
        (greeting,) = h.fake.of("chat.postMessage")
        assert greeting.body["channel"] == DM and greeting.body["thread_ts"] == THREAD
        text = str(greeting.body["text"])
        assert "`hr`: People data" in text and "`shop` — the default of the channel you are viewing: Orders" in text
        (prompts,) = h.fake.of("assistant.threads.setSuggestedPrompts")
        assert prompts.body["channel_id"] == DM and prompts.body["thread_ts"] == THREAD
        offered = (
            json.loads(prompts.body["prompts"]) if isinstance(prompts.body["prompts"], str) else prompts.body["prompts"]
        )
        assert {"title": "Who joined most recently?", "message": "[db:hr] Who joined most recently?"} in offered
        assert 1 <= len(offered) <= 4 and "Bob" not in json.dumps(offered)  # never another user's question

        before = len(h.fake.calls)
        await h.event(_message(h, "who works here?"), event_id="EvQ1")
        await h.fake.wait_for(lambda f: ("assistant.threads.setStatus", "") in _panel(f.calls[before:]))
        await h.idle()
        shown = _panel(h.fake.calls[before:])
        steps = [f"is {messages.PROGRESS[s]}" for s in ("finding_tables", "writing_sql", "checking")]
        assert [s for m, s in shown if m.endswith("setStatus")] == [*steps, ""]
        assert [m for m, _ in shown] == [*["assistant.threads.setStatus"] * 3, "chat.postMessage",
                                         "assistant.threads.setStatus"]  # fmt: skip
        answer = h.fake.of("chat.postMessage")[-1]
        assert answer.body["thread_ts"] == THREAD and SQL in json.dumps(answer.body["blocks"])
        assert any(b.get("type") == "actions" for b in answer.body["blocks"])  # the same buttons
        (title,) = h.fake.of("assistant.threads.setTitle")
        assert title.body["title"] == "who works here?" and title.body["thread_ts"] == THREAD
        assert h.model.requests[-1].database.name == "shop"  # the viewed channel's default

        await h.event(_message(h, "only the first three"), event_id="EvQ2")
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 3)
        follow_up = h.model.requests[-1]
        assert follow_up.database.name == "shop" and follow_up.context is not None
        assert follow_up.context.question == "who works here?"
        assert len(h.fake.of("assistant.threads.setTitle")) == 1  # the title is the first question's

        await h.event(_changed("C-general"), event_id="EvMove")
        await h.idle()
        await h.event(_message(h, "how many people are there?"), event_id="EvQ3")
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 4)
        moved = h.model.requests[-1]
        assert moved.database.name == "hr" and moved.context is None  # switched: no follow-up across databases
        audit = h.assistant.store.audit(limit=3)
        assert {a.channel for a in audit} == {DM} and all(a.platform == "slack" for a in audit)


async def test_a_named_database_and_a_follow_up_outrank_the_viewed_channel(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url, answers=[SQL] * 2) as h:
        await _setup(h, sqlite_url)
        await h.event(_started("C-sales"), event_id="EvStart")
        await h.event(_message(h, "[db:hr] who works here?"), event_id="EvQ1")
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 2)
        await h.event(_message(h, "and their ids?"), event_id="EvQ2")
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 3)
        assert [r.database.name for r in h.model.requests] == ["hr", "hr"]


async def test_assistant_thread_without_usable_databases_says_so(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        admin = Where(platform="slack", workspace="T1", channel=DM, user_id=ADMIN_USER)
        await h.assistant.handle(f"admin revoke hr {DM}", admin)
        await h.event(_started(None), event_id="EvStart")
        await h.fake.wait_for(lambda f: bool(f.of("chat.postMessage")))
        await h.idle()
        assert h.fake.of("chat.postMessage")[0].body["text"] == messages.SLACK_ASSISTANT_NONE
        assert h.fake.of("assistant.threads.setSuggestedPrompts") == []


async def test_assistant_events_need_a_valid_signature(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        body = json.dumps({"token": "legacy", "team_id": "T1", "api_app_id": "A1", "event": _started("C-sales"),
                           "type": "event_callback", "event_id": "EvForged", "event_time": 1720000000})  # fmt: skip
        unsigned, _ = await h.post("/slack/events", body, content_type="application/json", sign=False)
        assert unsigned.status_code == 401
        await h.idle()
        assert [c.method for c in h.fake.calls if c.method != "auth.test"] == []


async def test_a_refused_status_call_never_stops_the_answer(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        h.fake.failures["assistant.threads.setStatus"] = "missing_scope"
        h.fake.failures["assistant.threads.setTitle"] = "missing_scope"
        await h.event(_message(h, "who works here?"), event_id="EvQ1")
        await h.fake.wait_for(lambda f: bool(f.of("chat.postMessage")))
        await h.idle()
        assert SQL in json.dumps(h.fake.of("chat.postMessage")[0].body["blocks"])


async def test_the_thread_context_store_keeps_ids_only(settings: Settings, sqlite_url: str) -> None:
    from bot.slack.threads import ThreadContextStore

    async with running_slack(settings, sqlite_url) as h:
        store = ThreadContextStore(engine=h.assistant.store.engine)
        assert await store.find(channel_id=DM, thread_ts=THREAD) is None
        await store.save(channel_id=DM, thread_ts=THREAD, context={"channel_id": "C1", "team_id": "T1", "x": "y"})
        found = await store.find(channel_id=DM, thread_ts=THREAD)
        assert found is not None and dict(found) == {"channel_id": "C1", "team_id": "T1"}
        await store.save(channel_id=DM, thread_ts=THREAD, context={"team_id": "T1"})  # no channel: nothing to use
        assert await store.find(channel_id=DM, thread_ts=THREAD) is None
