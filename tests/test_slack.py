"""The Slack app against a fake Slack Web API on 127.0.0.1, with correctly signed requests:
slash commands, mentions and threads, every button, admin, retries, signatures, load."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bot.slack import blocks
from chat2sql.settings import Settings
from inference.client import WorkerColdStarting
from tests.support.fake_slack import Call, signed_headers
from tests.support.slack import SECRET, all_sections_fit, running_slack

pytestmark = pytest.mark.asyncio

SQL = "SELECT name FROM employees ORDER BY id"


def _texts(call: Call) -> str:
    """All visible text of a message call: its text and every block's text."""
    return json.dumps(call.body.get("blocks", [])) + str(call.body.get("text", ""))


# --- slash command --------------------------------------------------------------------------


async def test_slash_command_acks_at_once_then_answers_in_channel(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        with h.held_core() as core:  # Slack got its ack while the core could not have run
            response, _ = await h.command("how many people work here?")
            assert response.status_code == 200 and core.passed == []
        assert "Working on it" in response.text  # an ephemeral ack, nothing slow before it
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 1)
        answer = h.fake.of("respond")[0].body
        assert answer["response_type"] == "in_channel" and answer["replace_original"] is False
        assert f"{SQL} LIMIT 50" in json.dumps(answer["blocks"])
        assert "<@U-alice> asked: how many people work here?" in json.dumps(answer["blocks"])
        actions = next(b for b in answer["blocks"] if b["type"] == "actions")
        assert [e["action_id"] for e in actions["elements"]] == [
            blocks.PREVIEW,
            blocks.EXPLAIN,
            blocks.UP,
            blocks.DOWN,
            blocks.SCHEMA,
        ]
        assert all_sections_fit(answer["blocks"])
        audit = h.assistant.store.audit(limit=1)[0]
        assert audit.platform == "slack" and audit.workspace == "T1" and audit.channel == "C-general"
        assert str(audit.id) == actions["elements"][0]["value"]


async def test_help_and_errors_go_to_the_asker_only(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        await h.command("help")
        await h.command("use nope", hook="err")
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        for call in h.fake.of("respond"):
            assert call.body["response_type"] == "ephemeral", call
        error = next(c for c in h.fake.of("respond") if c.path.endswith("/err"))
        assert "nope" in _texts(error) and "Traceback" not in _texts(error)


async def test_rate_limit_is_a_friendly_ephemeral_message(settings: Settings, sqlite_url: str) -> None:
    from chat2sql.ratelimit import Limit

    async with running_slack(settings, sqlite_url, user_limit=Limit(1, 1)) as h:
        await h.command("how many people?", hook="one")
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 1)
        await h.command("and now?", hook="two")
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        limited = next(c for c in h.fake.of("respond") if c.path.endswith("/two"))
        assert limited.body["response_type"] == "ephemeral"
        assert "try again" in _texts(limited).lower() or "wait" in _texts(limited).lower()


async def test_cold_worker_gets_warming_up_notice_then_the_answer(settings: Settings, sqlite_url: str) -> None:
    answers: list[str | Exception] = [
        WorkerColdStarting(retry_after_s=0.05),
        WorkerColdStarting(retry_after_s=0.05),
        SQL,
    ]
    async with running_slack(settings, sqlite_url, answers=answers) as h:
        await h.command("how many people?")
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        notice, answer = h.fake.of("respond")
        assert notice.body["response_type"] == "ephemeral" and "warming up" in notice.body["text"]
        assert answer.body["response_type"] == "in_channel" and SQL in _texts(answer)
        await h.idle()
        assert len(h.fake.of("respond")) == 2  # one notice, one final reply


# --- mentions and threads -------------------------------------------------------------------


async def test_mention_is_answered_in_a_thread_and_followups_keep_context(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        ts = h.next_ts()
        mention = {"type": "app_mention", "user": "U-alice", "text": "<@UBOT> who works here?", "ts": ts,
                   "channel": "C-general", "event_ts": ts}  # fmt: skip
        with h.held_core() as core:
            response, _ = await h.event(mention)
            assert response.status_code == 200 and core.passed == []  # acked before any core work
        # Slack also sends the same message as a plain message event: answered once.
        await h.event({**mention, "type": "message", "channel_type": "channel"}, event_id="Ev1-twin")
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        first = h.fake.of("chat.postMessage")[0]
        assert first.body["thread_ts"] == ts and first.body["channel"] == "C-general" and SQL in _texts(first)
        assert h.model.requests[0].question == "who works here?" and h.model.requests[0].context is None

        follow_ts = h.next_ts()
        follow = {"type": "message", "channel_type": "channel", "user": "U-alice", "text": "only the first three",
                  "ts": follow_ts, "thread_ts": ts, "channel": "C-general", "event_ts": follow_ts}  # fmt: skip
        await h.event(follow, event_id="Ev2")
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 2)
        second = h.fake.of("chat.postMessage")[1]
        assert second.body["thread_ts"] == ts
        request = h.model.requests[-1]
        assert request.question == "only the first three" and request.database.name == "hr"
        assert request.context is not None and request.context.question == "who works here?"
        assert request.context.sql.startswith(SQL)

        # Chatter in a thread the bot never answered in is not a question.
        other_ts = h.next_ts()
        chatter = {**follow, "ts": other_ts, "thread_ts": "1600000000.000001", "text": "lunch?"}
        await h.event(chatter, event_id="Ev3")
        await h.idle()
        assert len(h.fake.of("chat.postMessage")) == 2 and len(h.model.requests) == 2


async def test_slack_retries_never_answer_twice(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        ts = h.next_ts()
        mention = {"type": "app_mention", "user": "U-alice", "text": "<@UBOT> who?", "ts": ts, "channel": "C-general"}
        await h.event(mention, event_id="EvR")
        for retry in (1, 2, 3):
            response, _ = await h.event(mention, event_id="EvR", retry=retry)
            assert response.status_code == 200
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        await h.idle()
        assert len(h.fake.of("chat.postMessage")) == 1 and len(h.model.requests) == 1
        metrics = (await h.http.get("/metrics")).text
        assert 'chat2sql_bot_duplicate_deliveries_total{platform="slack"} 3.0' in metrics


async def test_direct_message_is_a_question(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        ts = h.next_ts()
        dm = {"type": "message", "channel_type": "im", "user": "U-alice", "text": "who works here?", "ts": ts,
              "channel": "D-alice"}  # fmt: skip
        await h.event(dm, event_id="EvDM")
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        reply = h.fake.of("chat.postMessage")[0]
        assert reply.body["channel"] == "D-alice" and SQL in _texts(reply) and "thread_ts" not in reply.body


# --- buttons --------------------------------------------------------------------------------


async def _answer_id(h: object) -> int:
    from tests.support.slack import SlackHarness

    assert isinstance(h, SlackHarness)
    await h.command("who works here?")
    await h.fake.wait_for(lambda f: len(f.of("respond")) == 1)
    return h.assistant.store.audit(limit=1)[0].id


async def test_run_preview_posts_a_table_in_the_thread(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        audit_id = await _answer_id(h)
        with h.held_core() as core:
            response, _ = await h.interaction(h.click(blocks.PREVIEW, str(audit_id)))
            assert response.status_code == 200 and core.passed == []  # acked before the preview ran
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        table = h.fake.of("chat.postMessage")[0]
        assert table.body["thread_ts"] == "1710000000.000001" and "Ada" in _texts(table) and "```" in _texts(table)
        assert h.assistant.store.get(audit_id).preview_rows == 7  # type: ignore[union-attr]
        assert not h.fake.of("files.getUploadURLExternal")  # 7 rows fit


async def test_long_preview_is_cut_and_uploaded_as_csv(settings: Settings, sqlite_url: str) -> None:
    wide = "SELECT e.name, e.name || e.name || e.name || e.name || e.name AS wide, d.name AS dept FROM employees e, employees x, departments d"
    async with running_slack(settings, sqlite_url, answers=[wide], preview_max_rows=200) as h:
        audit_id = await _answer_id(h)
        await h.interaction(h.click(blocks.PREVIEW, str(audit_id)))
        await h.fake.wait_for(lambda f: len(f.of("files.completeUploadExternal")) == 1)
        table = h.fake.of("chat.postMessage")[0]
        assert all_sections_fit(table.body["blocks"]) and "CSV" in _texts(table)
        upload = h.fake.of("upload")[0].body["bytes"].decode()
        rows = h.assistant.store.get(audit_id).preview_rows  # type: ignore[union-attr]
        assert rows is not None and rows > 40 and upload.splitlines()[0] == "name,wide,dept"
        assert len(upload.splitlines()) == rows + 1
        complete = h.fake.of("files.completeUploadExternal")[0].body
        assert complete["channel_id"] == "C-general" and complete["thread_ts"] == "1710000000.000001"


async def test_preview_falls_back_to_response_url_outside_the_channel(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        audit_id = await _answer_id(h)
        h.fake.failures["chat.postMessage"] = "not_in_channel"
        await h.interaction(h.click(blocks.PREVIEW, str(audit_id)))
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        assert "Ada" in _texts(h.fake.of("respond")[1])


async def test_thumbs_up_records_feedback(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        audit_id = await _answer_id(h)
        await h.interaction(h.click(blocks.UP, str(audit_id), user="U-bob"))
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        assert h.fake.of("respond")[1].body["response_type"] == "ephemeral"
        (fb,) = h.assistant.store.feedback_for(audit_id)
        assert fb.rating == "up" and fb.user_id == "U-bob"


async def test_thumbs_down_opens_a_modal_and_records_the_correction(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        audit_id = await _answer_id(h)
        await h.interaction(h.click(blocks.DOWN, str(audit_id)))
        await h.fake.wait_for(lambda f: len(f.of("views.open")) == 1)
        opened = h.fake.of("views.open")[0].body
        view = opened["view"] if isinstance(opened["view"], dict) else json.loads(opened["view"])
        assert opened["trigger_id"] == "trigger-2" and view["callback_id"] == blocks.CORRECTION

        def submission(sql: str) -> dict[str, object]:
            state = {
                "values": {
                    blocks.CORRECTION_BLOCK: {blocks.CORRECTION_INPUT: {"type": "plain_text_input", "value": sql}}
                }
            }
            return {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U-alice", "team_id": "T1"},
                    "api_app_id": "A1", "view": {**view, "id": "V1", "state": state}}  # fmt: skip

        too_long, _ = await h.interaction(submission("SELECT " + "x, " * 2000 + "1"))
        assert too_long.json()["response_action"] == "errors" and blocks.CORRECTION_BLOCK in too_long.json()["errors"]
        assert h.assistant.store.feedback_for(audit_id) == []

        with h.held_core() as core:
            ok, _ = await h.interaction(submission("SELECT name FROM employees WHERE id < 4"))
            assert ok.status_code == 200 and core.passed == []  # acked before the feedback was stored
        await h.fake.wait_for(lambda f: len(f.of("chat.postEphemeral")) == 1)
        (fb,) = h.assistant.store.feedback_for(audit_id)
        assert fb.rating == "down" and fb.corrected_sql == "SELECT name FROM employees WHERE id < 4"

        closed = {"type": "view_closed", "team": {"id": "T1"}, "user": {"id": "U-bob", "team_id": "T1"},
                  "api_app_id": "A1", "view": {**view, "id": "V2"}, "is_cleared": False}  # fmt: skip
        await h.interaction(closed)
        await h.fake.wait_for(lambda f: len(f.of("chat.postEphemeral")) == 2)
        ratings = sorted((f.user_id, f.rating, f.corrected_sql) for f in h.assistant.store.feedback_for(audit_id))
        assert ratings[1] == ("U-bob", "down", None)


async def test_show_schema_posts_the_schema_in_the_thread(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        await _answer_id(h)
        await h.interaction(h.click(blocks.SCHEMA, "hr"))
        await h.interaction(h.click(blocks.SCHEMA, "secret_db"))
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1 and len(f.of("respond")) == 2)
        schema = h.fake.of("chat.postMessage")[0]
        assert "CREATE TABLE employees" in _texts(schema) and schema.body["thread_ts"] == "1710000000.000001"
        unknown = h.fake.of("respond")[1]
        assert unknown.body["response_type"] == "ephemeral" and "secret_db" in _texts(unknown)


# --- admin ----------------------------------------------------------------------------------


async def test_admin_allowed_and_refused(settings: Settings, sqlite_url: str, tmp_path: Path) -> None:
    from tests.support.databases import make_sqlite, sample_script

    other = make_sqlite(tmp_path / "other.db", sample_script("sqlite"))
    async with running_slack(settings, sqlite_url) as h:
        await h.command(f"admin register shop {other} Shop data", user="U-admin", hook="admin")
        await h.command("admin remove hr", user="U-alice", hook="refused")
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 2)
        allowed = next(c for c in h.fake.of("respond") if c.path.endswith("/admin"))
        assert allowed.body["response_type"] == "ephemeral" and "5 tables" in _texts(allowed)
        refused = next(c for c in h.fake.of("respond") if c.path.endswith("/refused"))
        assert "admin" in _texts(refused).lower() and "hr" in h.assistant.registry.names()
        assert "shop" in h.assistant.registry.names()


async def test_database_passwords_are_never_echoed(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        await h.command("admin register pgx postgresql://bob:hunter2@127.0.0.1:1/none x", user="U-admin")
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 1)
        assert "hunter2" not in json.dumps([c.body for c in h.fake.calls])


# --- security -------------------------------------------------------------------------------


async def test_unsigned_forged_and_replayed_requests_are_refused(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url) as h:
        body = "command=%2Fsql&text=how+many&team_id=T1&channel_id=C1&user_id=U1&response_url=" + h.fake.response_url()
        form = "application/x-www-form-urlencoded"
        unsigned, _ = await h.post("/slack/events", body, content_type=form, sign=False)
        forged, _ = await h.post("/slack/events", body, content_type=form, sign=False,
                                 headers=signed_headers("wrong-secret", body))  # fmt: skip
        old = int(time.time()) - 6 * 60
        replayed, _ = await h.post("/slack/events", body, content_type=form, sign=False,
                                   headers=signed_headers(SECRET, body, timestamp=old))  # fmt: skip
        tampered_headers = signed_headers(SECRET, body)
        tampered, _ = await h.post("/slack/events", body + "&x=1", content_type=form, sign=False,
                                   headers=tampered_headers)  # fmt: skip
        assert [r.status_code for r in (unsigned, forged, replayed, tampered)] == [401, 401, 401, 401]
        await asyncio.sleep(0.2)
        await h.idle()
        assert h.model.requests == [] and h.fake.of("respond") == []
        assert h.assistant.store.audit(limit=5) == [] or all(
            a.platform != "slack" or a.question.startswith("admin") for a in h.assistant.store.audit(limit=5)
        )
        assert 'chat2sql_bot_rejected_requests_total{platform="slack"} 4.0' in (await h.http.get("/metrics")).text


# --- load -----------------------------------------------------------------------------------


async def test_hundred_concurrent_commands_acked_before_any_answer_and_answered_once(
    settings: Settings, sqlite_url: str
) -> None:
    import sys
    from pathlib import Path

    from chat2sql.ratelimit import Limit

    n = 100
    async with running_slack(settings, sqlite_url, user_limit=Limit(6000, 1000), cache_ttl_s=0) as h:
        await h.command("warm up", hook="warm")  # Bolt's first request checks the token once
        await h.fake.wait_for(lambda f: len(f.of("respond")) == 1)
        # The burst comes from a process of its own, as Slack's requests would; all hundred are
        # acknowledged while the core is held, so none waited on another's answer.
        with h.held_core() as core:
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.slack_burst", h.url, SECRET, h.fake.base_url + "/respond", str(n),
                cwd=Path(__file__).parents[1], stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await client.communicate()
            statuses = json.loads(out)
            assert statuses == [200] * n
            assert core.passed == [] and len(h.fake.of("respond")) == 1  # only the warm-up is answered
        await h.fake.wait_for(lambda f: len(f.of("respond")) == n + 1, timeout=120)
        await h.idle(60)
        hooks = [c.path.rsplit("/", 1)[1] for c in h.fake.of("respond")]
        assert sorted(hooks) == sorted(["warm", *(f"q{i}" for i in range(n))])  # each exactly once
        server_side = (await h.http.get("/metrics")).text
        assert 'chat2sql_bot_ack_seconds_count{kind="command_or_action",platform="slack"} 101.0' in server_side


# --- installation ---------------------------------------------------------------------------


async def test_oauth_install_then_answers_with_the_installed_token(settings: Settings, sqlite_url: str) -> None:
    async with running_slack(settings, sqlite_url, oauth=True) as h:
        install = await h.http.get("/slack/install", follow_redirects=False)
        assert install.status_code in (200, 302)
        location = install.headers.get("location") or install.text
        state = parse_qs(urlparse(location[location.index("https://slack.com/oauth") :].split('"')[0]).query)["state"][
            0
        ]
        # The state cookie is Secure; this test talks plain HTTP, so it sends it by hand.
        cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in install.cookies.items())}
        callback = await h.http.get(f"/slack/oauth_redirect?code=abc&state={state}", headers=cookie)
        assert callback.status_code == 200, callback.text
        assert h.fake.of("oauth.v2.access")[0].body["code"] == "abc"
        ts = h.next_ts()
        mention = {"type": "app_mention", "user": "U-x", "text": "<@UBOT> who?", "ts": ts, "channel": "C-new"}
        await h.event(mention, event_id="EvT2", team="T2")
        await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) == 1)
        post = h.fake.of("chat.postMessage")[0]
        assert post.headers.get("Authorization") == "Bearer xoxb-installed"
        # A replayed state is refused.
        again = await h.http.get(f"/slack/oauth_redirect?code=abc&state={state}", headers=cookie)
        assert again.status_code >= 400


async def test_socket_mode_answers_a_slash_command(settings: Settings, sqlite_url: str) -> None:
    from tests.support.fake_slack import FakeSlack

    envelope_payload = {"command": "/sql", "text": "who works here?", "team_id": "T1", "channel_id": "C-general",
                        "user_id": "U-alice", "api_app_id": "A1", "trigger_id": "t"}  # fmt: skip
    original_start = FakeSlack.start

    async def start_with_envelope(self: FakeSlack) -> FakeSlack:
        await original_start(self)
        self.socket_envelopes.append(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {**envelope_payload, "response_url": self.response_url("socket")},
            }
        )
        return self

    FakeSlack.start = start_with_envelope  # type: ignore[method-assign]
    try:
        async with running_slack(settings, sqlite_url, socket=True, http=False) as h:
            await h.fake.wait_for(lambda f: bool(f.of("socket_ack")) and bool(f.of("respond")), timeout=20)
            assert h.fake.of("socket_ack")[0].body["envelope_id"] == "env-1"
            assert SQL in _texts(h.fake.of("respond")[0])
            # Without a signing secret there is no HTTP endpoint to forge requests to.
            assert (await h.http.post("/slack/events", content="x")).status_code == 404
    finally:
        FakeSlack.start = original_start  # type: ignore[method-assign]
