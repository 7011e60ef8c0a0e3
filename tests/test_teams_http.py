"""Teams over real HTTP: the FastAPI app under uvicorn on 127.0.0.1, the SDK's CloudAdapter
and JWT validation, and a fake Bot Connector (a real local HTTP server) that records
``POST /v3/conversations/{id}/activities[/{activityId}]``."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from jwt import PyJWKClient
from microsoft_agents.hosting.core import AgentAuthConfiguration
from microsoft_agents.hosting.core.authorization import JwtTokenValidator
from microsoft_agents.hosting.core.authorization.authentication_constants import AuthenticationConstants
from microsoft_agents.hosting.core.authorization.jwt.jwt_token_validator import _JwkClientCacheEntry
from pydantic import SecretStr
from sqlalchemy import create_engine

from bot.core.access import Admins
from bot.core.assistant import Assistant
from bot.platform import ServerContext
from bot.server import build_app
from bot.state import assistant_over
from bot.store import BotStore, Where
from bot.teams.app import AnonymousConnections, TeamsPlatform, auth_configuration
from bot.teams.store import TeamsStore
from chat2sql import messages
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter
from chat2sql.settings import Settings
from schemas.registry import Registry
from tests.support.assistant import assistant_config
from tests.support.clients import ScriptedClient
from tests.support.teams import (
    APP_ID,
    TEAM_CHANNEL,
    TENANT,
    FakeConnector,
    FixedTokenConnections,
    SlowClient,
    TokenIssuer,
    card_action,
    card_of,
    channel_message,
    fake_connector,
    personal_message,
    serve,
)

SQL = "SELECT name FROM employees ORDER BY id"
ADMIN_AAD = "aad-admin"


@dataclass
class Live:
    url: str
    connector: FakeConnector
    assistant: Assistant
    client: ScriptedClient
    http: httpx.AsyncClient

    async def post(self, payload: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(f"{self.url}/api/messages", json=payload, headers=headers)


@asynccontextmanager
async def live(
    settings: Settings,
    sqlite_url: str,
    *,
    client: ScriptedClient | None = None,
    auth: AgentAuthConfiguration | None = None,
    reply_window_s: float = 5.0,
    register: bool = True,
) -> AsyncIterator[Live]:
    client = client or ScriptedClient([SQL])
    assistant = assistant_over(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=client,
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse(f"teams:{ADMIN_AAD}"),
        config=assistant_config(cache_ttl_s=0),
    )
    admin = Where(platform="teams", workspace=TENANT, channel=TEAM_CHANNEL, user_id=ADMIN_AAD)
    if register:
        assert "Registered" in (await assistant.handle(f"admin register hr {sqlite_url}", admin)).text
    auth = auth or AgentAuthConfiguration(anonymous_allowed=True)
    connections = FixedTokenConnections(auth) if auth.CLIENT_ID else AnonymousConnections()
    async with fake_connector() as connector:
        ctx = ServerContext(settings=settings, assistant=assistant, engine=assistant.store.engine)
        platform = TeamsPlatform(
            ctx,
            auth=auth,
            connections=connections,
            store=TeamsStore(engine=create_engine(settings.effective_registry_url)),
            service_url=connector.url,
            reply_window_s=reply_window_s,
        )
        app = build_app(settings, context=ctx, platforms=[platform])
        async with serve(app) as url, httpx.AsyncClient(timeout=10) as http:
            yield Live(url, connector, assistant, client, http)


# --- anonymous (development) mode ------------------------------------------------------------


@pytest.mark.asyncio
async def test_http_mention_in_channel_gets_a_card_reply(
    settings: Settings, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with live(settings, sqlite_url) as app:
        assert "TEAMS ANONYMOUS MODE" in caplog.text  # the loud start-up warning
        response = await app.post(channel_message("who works here?"))
        assert response.status_code == 202
        (reply,) = await app.connector.wait_for(1)
        typing = app.connector.posted[0]
        assert typing.body["type"] == "typing"
        assert reply.conversation_id == f"{TEAM_CHANNEL};messageid=1700000000001"
        assert reply.reply_to == "1700000000001"
        assert reply.authorization is None  # anonymous mode sends no token
        card = card_of(reply.body)
        assert card["version"] == "1.5" and card["actions"][0]["title"] == "Run preview"


@pytest.mark.asyncio
async def test_http_no_mention_in_channel_is_ignored(settings: Settings, sqlite_url: str) -> None:
    async with live(settings, sqlite_url) as app:
        assert (await app.post(channel_message("who works here?", mention=False))).status_code == 202
        assert app.connector.posted == [] and app.client.requests == []
        assert app.assistant.store.audit(limit=5)[0].question.startswith("admin register")


@pytest.mark.asyncio
async def test_http_personal_chat_reply(settings: Settings, sqlite_url: str) -> None:
    async with live(settings, sqlite_url) as app:
        assert (await app.post(personal_message("list employees"))).status_code == 202
        (reply,) = await app.connector.wait_for(1)
        assert reply.conversation_id == "a:1personal-aad-alice" and reply.reply_to == "1700000000201"
        card_of(reply.body)


@pytest.mark.asyncio
async def test_http_card_actions(settings: Settings, sqlite_url: str) -> None:
    async with live(settings, sqlite_url) as app:
        await app.post(channel_message("who works here?"))
        (answer,) = await app.connector.wait_for(1)
        actions = {a["title"]: a for a in card_of(answer.body)["actions"]}
        audit_id = actions["Run preview"]["data"]["audit_id"]

        await app.post(card_action(actions["Run preview"]["data"], id="b1"))
        preview = card_of((await app.connector.wait_for(2))[-1].body)
        assert preview["body"][0]["type"] == "Table" and len(preview["body"][0]["rows"]) == 8

        await app.post(card_action(actions["👍"]["data"], id="b2"))
        assert (await app.connector.wait_for(3))[-1].body["text"] == messages.feedback_thanks("up")

        down = dict(actions["👎"]["card"]["actions"][0]["data"], corrected_sql="SELECT 1")
        await app.post(card_action(down, id="b3"))
        thanks = (await app.connector.wait_for(4))[-1].body["text"]
        assert thanks == messages.feedback_thanks("down") + messages.EXAMPLE_FOR_ADMINS  # not an admin's correction
        feedback = app.assistant.store.feedback_for(audit_id)
        assert [(f.rating, f.corrected_sql, f.user_id) for f in feedback] == [
            ("up", None, "aad-alice"),
            ("down", "SELECT 1", "aad-alice"),
        ]

        await app.post(card_action(actions["Show schema"]["data"], id="b4"))
        schema = card_of((await app.connector.wait_for(5))[-1].body)
        assert "employees" in schema["body"][1]["inlines"][0]["text"]
        replies = app.connector.messages()
        assert all(p.conversation_id.endswith(";messageid=1700000000001") for p in replies)


@pytest.mark.asyncio
async def test_http_admin_allowed_and_refused(settings: Settings, sqlite_url: str) -> None:
    async with live(settings, sqlite_url) as app:
        await app.post(channel_message("admin remove hr", id="c1", user="aad-mallory"))
        assert "only chat2sql admins" in (await app.connector.wait_for(1))[-1].body["text"]
        assert app.assistant.registry.names() == ("hr",)
        await app.post(channel_message("admin remove hr", id="c2", user=ADMIN_AAD))
        assert (await app.connector.wait_for(2))[-1].body["text"] == messages.removed("hr")
        assert app.assistant.registry.names() == ()


@pytest.mark.asyncio
async def test_http_slow_answer_follows_proactively(settings: Settings, sqlite_url: str) -> None:
    client = SlowClient([SQL], delay_s=0.8)
    async with live(settings, sqlite_url, client=client, reply_window_s=0.3) as app:
        response = await app.post(channel_message("who works here?"))
        assert response.status_code == 202  # the turn ended inside the window
        assert [p.body.get("text") for p in app.connector.messages()] == [messages.TEAMS_WORKING]
        _, answer = await app.connector.wait_for(2)
        assert answer.conversation_id == f"{TEAM_CHANNEL};messageid=1700000000001"
        assert answer.reply_to == "1700000000001"
        card_of(answer.body)
    assert len(app.connector.messages()) == 2  # exactly one final reply


# --- authentication on -------------------------------------------------------------------------


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer()


def _route_keys_to(connector: FakeConnector, issuer: TokenIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve the test key where the SDK fetches Bot Connector keys (the JWKS URL is fixed
    in the SDK, so its per-URL client cache is pointed at the fake connector's /keys)."""
    connector.jwks = issuer.jwks()
    cache = JwtTokenValidator._jwk_client_manager._cache
    entry = _JwkClientCacheEntry(PyJWKClient(f"{connector.url}keys"), threading.Lock())
    monkeypatch.setitem(cache, AuthenticationConstants.PUBLIC_ABS_JWKS_URL, entry)


@pytest.mark.asyncio
async def test_http_auth_refuses_requests_without_a_valid_token(
    settings: Settings, sqlite_url: str, issuer: TokenIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = auth_configuration(
        Settings(teams_app_id=APP_ID, teams_tenant_id=TENANT, teams_app_password=SecretStr("x"), _env_file=None)  # type: ignore[call-arg]
    )
    async with live(settings, sqlite_url, auth=auth) as app:
        _route_keys_to(app.connector, issuer, monkeypatch)
        stranger = TokenIssuer(kid=issuer.kid)  # same key id, another key: a forged signature
        refused = [
            await app.post(personal_message("q", id="d1")),
            await app.http.post(
                f"{app.url}/api/messages", json=personal_message("q"), headers={"Authorization": "Basic x"}
            ),
            await app.post(personal_message("q", id="d2"), token="not-a-jwt"),
            await app.post(personal_message("q", id="d3"), token=stranger.token()),
            await app.post(personal_message("q", id="d4"), token=issuer.token(aud="someone-else")),
            await app.post(personal_message("q", id="d5"), token=issuer.token(iss="https://evil.example")),
            await app.post(personal_message("q", id="d6"), token=issuer.token(exp=1, nbf=0)),
        ]
        assert [r.status_code for r in refused] == [401] * len(refused)
        assert all("Traceback" not in r.text for r in refused)
        assert app.connector.posted == [] and app.client.requests == []
        assert app.assistant.store.audit(limit=5)[0].question.startswith("admin register")

        accepted = await app.post(personal_message("list employees", id="d7"), token=issuer.token())
        assert accepted.status_code == 202
        (reply,) = await app.connector.wait_for(1)
        assert reply.authorization == f"Bearer {FixedTokenConnections.TOKEN}"
        card_of(reply.body)

        forged_url = dict(personal_message("q", id="d8"), serviceUrl="https://attacker.example/")
        assert (await app.post(forged_url, token=issuer.token())).status_code == 401
        assert len(app.connector.messages()) == 1


def test_configured_and_from_settings(settings: Settings) -> None:
    assert not TeamsPlatform.configured(settings)
    anonymous = settings.model_copy(update={"teams_allow_anonymous": True})
    assert TeamsPlatform.configured(anonymous)
    with_app = settings.model_copy(update={"teams_app_id": APP_ID, "teams_tenant_id": TENANT})
    assert TeamsPlatform.configured(with_app)
    auth = auth_configuration(with_app.model_copy(update={"teams_auth_type": "user_managed_identity"}))
    assert auth.AUTH_TYPE.value == "UserManagedIdentity" and auth.CLIENT_ID == APP_ID and not auth.ANONYMOUS_ALLOWED


@pytest.mark.asyncio
async def test_http_start_resumes_answers_owed_before_a_restart(settings: Settings, sqlite_url: str) -> None:
    async with live(settings, sqlite_url) as app:  # a first server stores the conversation
        await app.post(personal_message("help"))
        await app.connector.wait_for(1)
    store = TeamsStore(engine=create_engine(settings.effective_registry_url))
    where = Where(platform="teams", workspace=TENANT, channel="a:1personal-aad-alice", user_id="aad-alice")
    store.add_pending(conversation_id="a:1personal-aad-alice", activity_id="e1", text="list employees", where=where)
    async with live(settings, sqlite_url, register=False) as app:  # the restarted server owes it
        (answer,) = await app.connector.wait_for(1)
        assert answer.conversation_id == "a:1personal-aad-alice" and answer.reply_to == "e1"
        card_of(answer.body)
    assert store.pending() == []
    store.close()
