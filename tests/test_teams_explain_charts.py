"""Teams: the Explain and Chart card actions and a clarifying question's choices, in process
over the recording adapter; every card checked against the Adaptive Card 1.5 rules."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.core import charts
from bot.core.assistant import Option, PreviewReply, Reply
from bot.teams import cards
from bot.teams.bot import render
from chat2sql import messages
from chat2sql.settings import Settings
from tests.support.clients import ScriptedClient
from tests.support.teams import (
    ADMIN_AAD,
    TEAM_CHANNEL,
    TENANT,
    Rig,
    card_action,
    card_in,
    card_problems,
    channel_message,
    messages_of,
    teams_rig,
)

PAYROLL = (
    "SELECT d.name, SUM(e.salary) AS payroll FROM employees e JOIN departments d ON e.department_id = d.id "
    "GROUP BY d.name ORDER BY payroll DESC"
)


@pytest_asyncio.fixture
async def payroll(settings: Settings, sqlite_url: str) -> AsyncIterator[Rig]:
    r = await teams_rig(settings, sqlite_url, ScriptedClient([PAYROLL]))
    yield r
    await r.background.drain()
    r.store.close()
    await r.assistant.close()


async def _answer_actions(r: Rig) -> dict[str, dict[str, object]]:
    await r.turn(channel_message("payroll per department?"))
    return {str(a["title"]): a for a in card_in(messages_of(r.adapter.sent)[0])["actions"]}


@pytest.mark.asyncio
async def test_explain_action_answers_with_an_explanation_card(payroll: Rig) -> None:
    actions = await _answer_actions(payroll)
    await payroll.turn(card_action(actions[messages.EXPLAIN]["data"], id="x1"))  # type: ignore[arg-type]
    card = card_in(messages_of(payroll.adapter.sent)[-1])
    texts = [b["text"] for b in card["body"]]
    assert texts[0] == messages.explain_title("hr") and card["body"][0]["weight"] == "Bolder"
    assert "Joins departments (as d), matching rows where e.department_id equals d.id." in texts
    assert "Sorts by payroll (highest first)." in texts
    await payroll.turn(card_action({"chat2sql": "explain", "audit_id": 424242}, id="x2"))
    assert messages_of(payroll.adapter.sent)[-1].text == messages.EXPLAIN_GONE
    assert len(payroll.client.requests) == 1


@pytest.mark.asyncio
async def test_chart_action_on_a_chartable_preview_sends_an_image_card(payroll: Rig) -> None:
    actions = await _answer_actions(payroll)
    await payroll.turn(card_action(actions["Run preview"]["data"], id="c1"))  # type: ignore[arg-type]
    preview = card_in(messages_of(payroll.adapter.sent)[-1])
    (chart_action,) = preview["actions"]
    assert chart_action["title"] == messages.CHART and chart_action["data"]["chat2sql"] == "chart"

    await payroll.turn(card_action(chart_action["data"], id="c2"))
    card = card_in(messages_of(payroll.adapter.sent)[-1])  # checks the 40 KB card budget too
    title, image = card["body"]
    assert title["text"] == "payroll by name" and image["type"] == "Image" and image["altText"] == "payroll by name"
    png = base64.b64decode(image["url"].removeprefix("data:image/png;base64,"))
    assert png[:8] == charts.PNG_SIGNATURE and len(png) <= charts.TEAMS_MAX_PNG_BYTES
    assert cards.card_bytes(card) <= cards.MAX_CARD_BYTES


@pytest.mark.asyncio
async def test_no_chart_action_for_a_list_and_a_refusal_if_pressed(rig: Rig) -> None:
    await rig.turn(channel_message("who works here?"))
    audit_id = rig.assistant.store.audit(limit=1)[0].id
    await rig.turn(card_action({"chat2sql": "preview", "audit_id": audit_id}, id="p1"))
    assert "actions" not in card_in(messages_of(rig.adapter.sent)[-1])
    await rig.turn(card_action({"chat2sql": "chart", "audit_id": audit_id}, id="p2"))
    assert messages_of(rig.adapter.sent)[-1].text == messages.CHART_UNSUITABLE


@pytest.mark.asyncio
async def test_choices_are_buttons_whose_press_is_the_users_next_message(rig: Rig) -> None:
    admin = channel_message(f"admin register shop {rig.assistant.registry.connection_url('hr')} Shop",
                            user=ADMIN_AAD, id="r1")  # fmt: skip
    await rig.turn(admin)
    await rig.turn(channel_message("who works here?", id="q1"))
    asked = card_in(messages_of(rig.adapter.sent)[-1])
    assert "Which database?" in asked["body"][0]["text"]
    buttons = {a["title"]: a for a in asked["actions"]}
    assert set(buttons) == {"hr", "shop"} and buttons["shop"]["data"] == {
        "chat2sql": "option",
        "text": "[db:shop] who works here?",
    }
    before = len(messages_of(rig.adapter.sent))
    await rig.turn(card_action(buttons["shop"]["data"], id="o1", root="q1"))
    answer = card_in(messages_of(rig.adapter.sent)[-1])
    assert len(messages_of(rig.adapter.sent)) == before + 1 and "SELECT name FROM employees" in str(answer)
    assert rig.client.requests[-1].database.name == "shop"
    audit = rig.assistant.store.audit(limit=1)[0]
    assert (audit.platform, audit.workspace, audit.channel) == ("teams", TENANT, TEAM_CHANNEL)
    await rig.turn(card_action({"chat2sql": "option", "text": "  "}, id="o2"))
    assert messages_of(rig.adapter.sent)[-1].text == messages.TEAMS_UNKNOWN_ACTION


def test_cards_for_explanations_charts_and_choices_follow_the_rules() -> None:
    explanation = cards.explanation_card("What this does:\nReads from t.\nFirst:\n  Reads from u.")
    assert card_problems(explanation) == [] and explanation["body"][3]["text"] == "\u2003Reads from u."
    spec = charts.chart_spec(PreviewReply(ok=True, text="", columns=("d", "n"), rows=(("a", 1), ("b", 2))))
    assert spec is not None
    png = charts.render_png(spec, max_bytes=charts.TEAMS_MAX_PNG_BYTES)
    assert png is not None and card_problems(cards.chart_card("n by d", png)) == []
    many = [Option(label=f"database number {i} " + "x" * 80, text=f"[db:d{i}] q") for i in range(12)]
    card = cards.options_card("Which one?", many)
    assert card_problems(card) == [] and len(card["actions"]) == cards.MAX_OPTIONS
    assert [a.get("mode", "primary") for a in card["actions"]].count("secondary") == cards.MAX_OPTIONS - 5
    assert all(len(a["title"]) <= cards.MAX_TITLE_CHARS for a in card["actions"]) and "2 more" in str(card["body"])
    plain = render(Reply(kind="text", text="hi"))
    assert plain.text == "hi" and not plain.attachments
