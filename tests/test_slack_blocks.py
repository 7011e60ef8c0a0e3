"""Block Kit within Slack's limits, Slack markup back to text, the manifest in step with the app."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from bot.slack import blocks
from bot.slack.oauth import BOT_SCOPES
from bot.slack.requests import from_slack
from tests.support.slack import all_sections_fit

# --- Block Kit limits and text --------------------------------------------------------------


def test_long_sql_and_many_warnings_stay_within_slack_limits() -> None:
    from bot.core.assistant import Answer

    sql = "SELECT\n" + ",\n".join(f"  column_{i} AS alias_{i}" for i in range(6000)) + "\nFROM t"
    answer = Answer(sql=sql, database="db", warnings=tuple(f"warning {i}" for i in range(30)), latency_ms=1.0,
                    cache_hit=True, trace_id="t", audit_id=1)  # fmt: skip
    out = blocks.answer_blocks(answer, asked_by="U1", question="q" * 600)
    assert all_sections_fit(out) and out[-1]["type"] == "actions"
    assert any(blocks.MAX_SECTION_CHARS > len(b.get("text", {}).get("text", "")) > 2000 for b in out)
    assert "Cut to fit" in json.dumps(out)
    one_line = Answer(sql="SELECT " + "x" * 10_000, database="db", warnings=(), latency_ms=1.0, cache_hit=False,
                      trace_id="t", audit_id=2)  # fmt: skip
    assert all_sections_fit(blocks.answer_blocks(one_line))
    assert all_sections_fit(blocks.schema_blocks("db", "CREATE TABLE t (a INT);\n\n" * 5000))
    assert all_sections_fit(blocks.text_blocks("word " * 10_000))


def test_from_slack_markup() -> None:
    assert from_slack("<@UBOT|chat2sql>: how many &amp; why", bot_user_id="UBOT") == "how many & why"
    assert from_slack("admin register x <https://host/db> d") == "admin register x https://host/db d"
    assert from_slack("admin grant shop <#C0123|sales>") == "admin grant shop C0123"
    assert from_slack("ask <@U999> something", bot_user_id="UBOT") == "ask <@U999> something"


def test_manifest_matches_the_app() -> None:
    manifest = yaml.safe_load((Path(__file__).parents[1] / "deploy/slack/manifest.yaml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/sql" and command["url"].endswith("/slack/events")
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] and settings["interactivity"]["request_url"].endswith(
        "/slack/events"
    )
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "app_uninstalled",
        "tokens_revoked",
    } <= events
    assert manifest["oauth_config"]["redirect_urls"][0].endswith("/slack/oauth_redirect")
