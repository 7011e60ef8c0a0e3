"""Teams 1:1 chats stream: informative updates while the answer is written, the card as the
stream's last message, all inside the turn; the owed-answer row comes first, so a process
killed mid-stream answers after its restart, exactly once. Over real HTTP against the fake
Bot Connector, and in process over the recording adapter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from microsoft_agents.hosting.core import AgentAuthConfiguration
from microsoft_agents.hosting.core.authorization import ClaimsIdentity
from sqlalchemy import create_engine

from bot.core.access import Admins
from bot.core.assistant import Assistant
from bot.metrics import BotMetrics
from bot.platform import Background, ServerContext
from bot.server import build_app
from bot.state import assistant_over
from bot.store import BotStore, Where
from bot.teams.app import AnonymousConnections, TeamsPlatform
from bot.teams.bot import TeamsBot
from bot.teams.store import TeamsStore
from chat2sql import messages
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter
from chat2sql.settings import Settings
from inference.client import InferenceClient
from inference.protocol import GenerateRequest, GenerateResponse
from schemas.registry import Registry
from tests.support.assistant import assistant_config
from tests.support.clients import ScriptedClient
from tests.support.teams import (
    TEAM_CHANNEL,
    TENANT,
    RecordingAdapter,
    SlowClient,
    card_of,
    channel_message,
    fake_connector,
    messages_of,
    personal_message,
    serve,
)

pytestmark = pytest.mark.asyncio

SQL = "SELECT name FROM employees ORDER BY id"
STEPS = {messages.TEAMS_STREAM_START} | {p[:1].upper() + p[1:] for p in messages.PROGRESS.values()}


def _assistant(settings: Settings, client: InferenceClient) -> Assistant:
    return assistant_over(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=client,
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse("teams:aad-admin"),
        config=assistant_config(cache_ttl_s=0),
    )


async def _register(assistant: Assistant, sqlite_url: str) -> None:
    admin = Where(platform="teams", workspace=TENANT, channel=TEAM_CHANNEL, user_id="aad-admin")
    assert "Registered" in (await assistant.handle(f"admin register hr {sqlite_url}", admin)).text


def _stream_info(body: dict[str, Any]) -> dict[str, Any] | None:
    return next((e for e in body.get("entities") or [] if e.get("type") == "streaminfo"), None)


async def test_slow_personal_answer_streams_updates_then_the_card(settings: Settings, sqlite_url: str) -> None:
    assistant = _assistant(settings, SlowClient([SQL], delay_s=2.5))
    await _register(assistant, sqlite_url)
    async with fake_connector() as connector:
        ctx = ServerContext(settings=settings, assistant=assistant, engine=assistant.store.engine)
        platform = TeamsPlatform(
            ctx,
            auth=AgentAuthConfiguration(anonymous_allowed=True),
            connections=AnonymousConnections(),
            store=TeamsStore(engine=create_engine(settings.effective_registry_url)),
            service_url=connector.url,
            reply_window_s=0.3,  # the channel path would have ended the turn long before the answer
        )
        platform.bot.stream_after_s = 0.2
        async with serve(build_app(settings, context=ctx, platforms=[platform])) as url:
            import httpx

            async with httpx.AsyncClient(timeout=30) as http:
                response = await http.post(f"{url}/api/messages", json=personal_message("who works here?"))
        assert response.status_code == 202  # the stream, final message included, ran inside the turn
        bodies = [p.body for p in connector.posted]
        assert bodies[0]["type"] == "typing" and _stream_info(bodies[0]) is None  # the typing indicator
        streamed = bodies[1:]
        informative = [b for b in streamed if (_stream_info(b) or {}).get("streamType") == "informative"]
        assert informative and {b["text"] for b in informative} <= STEPS
        assert informative[0]["text"] in STEPS and all(len(b["text"]) <= 1000 for b in informative)
        sequences = [_stream_info(b)["streamSequence"] for b in informative]  # type: ignore[index]
        assert sequences == sorted(sequences)
        final = streamed[-1]
        assert final["type"] == "message" and _stream_info(final)["streamType"] == "final"  # type: ignore[index]
        card_of(final)
        first_id = "bot-2"  # the connector's id for the first stream update: the stream's id
        assert _stream_info(final)["streamId"] == first_id  # type: ignore[index]
        assert [p.body["type"] for p in connector.messages()] == ["message"]  # one final reply
        assert platform._store.pending() == []  # no longer owed
    await assistant.close()


async def test_channels_keep_the_typing_indicator_and_proactive_follow_up(settings: Settings, sqlite_url: str) -> None:
    assistant = _assistant(settings, SlowClient([SQL], delay_s=0.3))
    await _register(assistant, sqlite_url)
    adapter, background = RecordingAdapter(), Background()
    store = TeamsStore(engine=create_engine(settings.effective_registry_url))
    bot = TeamsBot(assistant=assistant, store=store, adapter=adapter, claims=ClaimsIdentity, metrics=BotMetrics(),
                   background=background, reply_window_s=0.05, stream_after_s=0.01)  # fmt: skip
    await adapter.turn(bot, channel_message("who works here?"))
    await background.drain()
    assert all(_stream_info(a.model_dump(by_alias=True, exclude_none=True)) is None for a in adapter.sent)
    assert [a.text for a in messages_of(adapter.sent)] == [messages.TEAMS_WORKING]
    assert len(messages_of(adapter.proactive)) == 1
    store.close()
    await assistant.close()


class _Stuck(ScriptedClient):
    """A model that never answers: the process dies while it is being waited for."""

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_process_killed_mid_stream_answers_after_restart_exactly_once(
    settings: Settings, sqlite_url: str
) -> None:
    first = _assistant(settings, _Stuck([SQL]))
    await _register(first, sqlite_url)
    adapter, background = RecordingAdapter(), Background()
    store = TeamsStore(engine=create_engine(settings.effective_registry_url))
    bot = TeamsBot(assistant=first, store=store, adapter=adapter, claims=ClaimsIdentity, metrics=BotMetrics(),
                   background=background, stream_after_s=0.01)  # fmt: skip
    turn = asyncio.create_task(adapter.turn(bot, personal_message("who works here?")))
    for _ in range(500):
        if any((_stream_info(a.model_dump(by_alias=True, exclude_none=True)) or {}).get("streamType") == "informative"
               for a in adapter.sent):  # fmt: skip
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"no informative update: {adapter.sent}")
    (owed,) = store.pending()  # written before the first update
    assert owed.text == "who works here?" and owed.activity_id == "1700000000201"
    turn.cancel()  # the process dies: the turn, the answer, the stream, all gone
    await background.drain(timeout_s=0)
    with pytest.raises(asyncio.CancelledError):
        await turn
    assert messages_of(adapter.sent) == []
    store.close()
    await first.close()

    for restart in range(2):  # the restarted process, then another restart
        assistant = _assistant(settings, ScriptedClient([SQL]))
        adapter2, store2 = RecordingAdapter(), TeamsStore(engine=create_engine(settings.effective_registry_url))
        bot2 = TeamsBot(assistant=assistant, store=store2, adapter=adapter2, claims=ClaimsIdentity,
                        metrics=BotMetrics(), background=Background())  # fmt: skip
        for pending in store2.pending():  # what TeamsPlatform.start does
            await bot2.resume(pending)
        delivered = messages_of(adapter2.proactive)
        if restart == 0:
            (answer,) = delivered
            assert answer.attachments and answer.reply_to_id == "1700000000201"
        else:
            assert delivered == []  # exactly once
        store2.close()
        await assistant.close()
