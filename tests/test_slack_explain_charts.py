"""Slack: the Explain and Chart buttons and a clarifying question's choices, against the fake
Slack Web API with signed requests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core import charts
from bot.core.assistant import Option, PreviewReply
from bot.slack import blocks
from chat2sql import messages
from chat2sql.settings import Settings
from tests.support.fake_slack import Call
from tests.support.slack import SlackHarness, admin_where, all_sections_fit, running_slack

PAYROLL = (
    "SELECT d.name, SUM(e.salary) AS payroll FROM employees e JOIN departments d ON e.department_id = d.id "
    "GROUP BY d.name ORDER BY payroll DESC"
)


def _texts(call: Call | dict[str, Any]) -> str:
    body = call.body if isinstance(call, Call) else call
    return json.dumps(body.get("blocks", []), ensure_ascii=False) + str(body.get("text", ""))


def _actions(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in body.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


async def _answer_id(h: SlackHarness, question: str = "payroll per department?") -> int:
    await h.command(question)
    await h.fake.wait_for(lambda f: len(f.of("respond")) == 1)
    return h.assistant.store.audit(limit=1)[0].id


@pytest.mark.asyncio
async def test_explain_posts_the_plain_english_in_the_thread(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url, answers=[PAYROLL]) as h:
        audit_id = await _answer_id(h)
        answer = h.fake.of("respond")[0].body
        assert any(e["action_id"] == blocks.EXPLAIN and e["value"] == str(audit_id) for e in _actions(answer))
        with h.held_core() as core:
            response, _ = await h.interaction(h.click(blocks.EXPLAIN, str(audit_id)))
            assert response.status_code == 200 and core.passed == []  # acked before the explanation
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        post = h.fake.of("chat.postMessage")[0]
        text = _texts(post)
        assert post.body["thread_ts"] == "1710000000.000001" and messages.explain_title("hr") in text
        for phrase in ("Joins departments (as d)", "Groups the rows by d.name", "Sorts by payroll (highest first)"):
            assert phrase in text
        assert all_sections_fit(post.body["blocks"])

        await h.interaction(h.click(blocks.EXPLAIN, "999999", user="U-bob"))
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        gone = h.fake.of("respond")[1]
        assert gone.body["response_type"] == "ephemeral" and messages.EXPLAIN_GONE in _texts(gone)
        assert len(h.model.requests) == 1  # explaining never asks the model


@pytest.mark.asyncio
async def test_chart_button_only_on_chartable_previews_and_posts_a_png(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url, answers=[PAYROLL]) as h:
        audit_id = await _answer_id(h)
        await h.interaction(h.click(blocks.PREVIEW, str(audit_id)))
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        preview = h.fake.of("chat.postMessage")[0].body
        (chart_button,) = [e for e in _actions(preview) if e["action_id"] == blocks.CHART]
        assert chart_button["value"] == str(audit_id)

        with h.held_core() as core:
            response, _ = await h.interaction(h.click(blocks.CHART, str(audit_id)))
            assert response.status_code == 200 and core.passed == []  # acked before the chart was drawn
        await h.fake.wait_for(lambda f: len(f.of("files.completeUploadExternal")) == 1)
        requested = h.fake.of("files.getUploadURLExternal")[0].body
        assert requested["filename"] == f"chart-{audit_id}.png"
        png = h.fake.of("upload")[0].body["bytes"]
        assert png[:8] == charts.PNG_SIGNATURE and 1_000 < len(png) < 100_000
        complete = h.fake.of("files.completeUploadExternal")[0].body
        assert complete["channel_id"] == "C-general" and complete["thread_ts"] == "1710000000.000001"
        assert "payroll by name" in json.dumps(complete)


@pytest.mark.asyncio
async def test_no_chart_button_for_a_list_and_a_refusal_if_clicked(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:  # SELECT name FROM employees: one column
        audit_id = await _answer_id(h, "who works here?")
        await h.interaction(h.click(blocks.PREVIEW, str(audit_id)))
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        assert not [e for e in _actions(h.fake.of("chat.postMessage")[0].body) if e["action_id"] == blocks.CHART]
        await h.interaction(h.click(blocks.CHART, str(audit_id)))  # an old or forged button
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        assert messages.CHART_UNSUITABLE in _texts(h.fake.of("respond")[1])
        assert not h.fake.of("files.getUploadURLExternal")


@pytest.mark.asyncio
async def test_failed_chart_upload_is_said_not_raised(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url, answers=[PAYROLL]) as h:
        audit_id = await _answer_id(h)
        h.fake.failures["files.getUploadURLExternal"] = "missing_scope"
        await h.interaction(h.click(blocks.CHART, str(audit_id)))
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        assert messages.CHART_UPLOAD_FAILED in _texts(h.fake.of("respond")[1])


# --- a clarifying question's choices --------------------------------------------------------------


def _option_click(h: SlackHarness, element: dict[str, Any], *, ephemeral: bool, thread_ts: str | None = None,
                  user: str = "U-bob") -> dict[str, Any]:  # fmt: skip
    action: dict[str, Any] = {"type": element["type"], "action_id": element["action_id"], "block_id": "options"}
    if element["type"] == "overflow":
        action["selected_option"] = element["options"][0]
    else:
        action["value"] = element["value"]
    payload = h.click(element["action_id"], "", user=user)
    payload["actions"] = [action]
    if ephemeral:
        payload["container"] = {"type": "message", "message_ts": "1710000000.000009", "channel_id": "C-general",
                                "is_ephemeral": True}  # fmt: skip
        del payload["message"]
    else:
        payload["message"] = {"type": "message", "ts": "1700000000.000001", "thread_ts": thread_ts, "text": "x"}
    return payload


@pytest.mark.asyncio
async def test_choices_of_a_slash_question_are_buttons_answering_in_channel(
    settings: Settings, sqlite_url: str
) -> None:
    async with running_slack(settings, sqlite_url) as h:
        await h.assistant.handle(f"admin register shop {sqlite_url} Shop", admin_where())
        await h.command("who works here?")
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 1)
        asked = h.fake.of("respond")[0].body
        assert asked["response_type"] == "ephemeral" and "Which database?" in _texts(asked)
        buttons = [e for e in _actions(asked) if e["action_id"] == blocks.OPTION]
        assert [b["text"]["text"] for b in buttons] == ["hr", "shop"]
        assert buttons[0]["value"] == "[db:hr] who works here?"

        with h.held_core() as core:
            response, _ = await h.interaction(_option_click(h, buttons[0], ephemeral=True))
            assert response.status_code == 200 and core.passed == []  # acked before the question ran
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        answer = h.fake.of("respond")[1]
        assert answer.path.endswith("/action") and answer.body["response_type"] == "in_channel"
        assert "SELECT name FROM employees" in _texts(answer) and "<@U-bob> asked: [db:hr] who works here?" in _texts(
            answer
        )
        request = h.model.requests[-1]
        assert request.database.name == "hr" and request.question == "who works here?"
        audit = h.assistant.store.audit(limit=1)[0]
        assert audit.user_id == "U-bob" and audit.database == "hr"  # the clicking user asked


@pytest.mark.asyncio
async def test_choices_in_a_thread_answer_in_that_thread(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        await h.assistant.handle(f"admin register shop {sqlite_url} Shop", admin_where())
        ts = h.next_ts()
        await h.event({"type": "app_mention", "user": "U-alice", "text": "<@UBOT> who works here?", "ts": ts,
                       "channel": "C-general"})  # fmt: skip
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        asked = h.fake.of("chat.postMessage")[0].body
        assert asked["thread_ts"] == ts
        (shop,) = [e for e in _actions(asked) if e["action_id"] == blocks.OPTION and e["text"]["text"] == "shop"]
        await h.interaction(_option_click(h, shop, ephemeral=False, thread_ts=ts, user="U-alice"))
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 2)
        answer = h.fake.of("chat.postMessage")[1]
        assert answer.body["thread_ts"] == ts and answer.body["channel"] == "C-general"
        assert "SELECT name FROM employees" in _texts(answer)
        assert h.model.requests[-1].database.name == "shop"
        assert h.assistant.store.last_turn(_thread(ts)) is not None  # a follow-up in this thread keeps shop


@pytest.mark.asyncio
async def test_overflow_choice_is_sent_like_a_button(settings: Settings, sqlite_url: str) -> None:
    options = [Option(label=f"choice {i}", text=f"[db:hr] question {i}") for i in range(7)]
    (actions,) = blocks.option_blocks(options)
    assert [e["type"] for e in actions["elements"]] == ["button"] * 5 + ["overflow"]
    overflow = actions["elements"][-1]
    assert [o["value"] for o in overflow["options"]] == ["[db:hr] question 5", "[db:hr] question 6"]
    async with running_slack(settings, sqlite_url) as h:
        await h.interaction(_option_click(h, overflow, ephemeral=True))
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 1)
        assert h.model.requests[-1].question == "question 5"


def test_option_blocks_respect_slack_limits() -> None:
    assert blocks.option_blocks([]) == [] and blocks.reply_blocks("hi") == blocks.text_blocks("hi")
    long = [Option(label="x" * 100, text="[db:hr] " + "q" * 200) for _ in range(7)]
    (actions,) = blocks.option_blocks(long)  # too long for an overflow: all buttons
    assert [e["type"] for e in actions["elements"]] == ["button"] * 7
    assert all(len(e["text"]["text"]) <= blocks.MAX_BUTTON_TEXT for e in actions["elements"])
    many = [Option(label=f"db{i}", text=f"[db:db{i}] q") for i in range(30)]
    actions, note = blocks.option_blocks(many)
    assert len(actions["elements"]) == blocks.MAX_ACTION_ELEMENTS and "5 more" in note["elements"][0]["text"]
    text = "\n\n".join(f"paragraph {i}" for i in range(60))
    assert all_sections_fit(blocks.reply_blocks(text, many))


def test_chart_button_needs_a_chartable_preview_and_an_answer() -> None:
    chartable = PreviewReply(ok=True, text="", columns=("d", "n"), rows=(("a", 1), ("b", 2)))
    content, _ = blocks.preview_blocks(chartable, audit_id=7)
    assert content[-1]["elements"][0]["action_id"] == blocks.CHART and content[-1]["elements"][0]["value"] == "7"
    assert all(b["type"] != "actions" for b in blocks.preview_blocks(chartable)[0])
    flat = PreviewReply(ok=True, text="", columns=("d",), rows=(("a",), ("b",)))
    assert all(b["type"] != "actions" for b in blocks.preview_blocks(flat, audit_id=7)[0])


def _thread(ts: str) -> Any:
    from bot.core.types import Where

    return Where(platform="slack", workspace="T1", channel="C-general", user_id="U-alice", thread=ts)
