"""Test doubles for Teams: activity builders, a recording adapter (the SDK has no
TestAdapter), a fake Bot Connector + JWKS endpoint on 127.0.0.1, a uvicorn runner, and a
checker of the Adaptive Card 1.5 constraints our cards rely on; ``Rig``: a TeamsBot over the
real core with a scripted model, turned through the recording adapter."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvicorn
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from microsoft_agents.activity import Activity, ConversationReference, ResourceResponse
from microsoft_agents.hosting.core import AgentAuthConfiguration, AnonymousTokenProvider, ChannelAdapter, TurnContext
from microsoft_agents.hosting.core.authorization import ClaimsIdentity
from sqlalchemy import create_engine

from bot.core.access import Admins
from bot.core.assistant import Assistant
from bot.metrics import BotMetrics
from bot.platform import Background
from bot.state import assistant_over
from bot.store import BotStore, Where
from bot.teams.bot import TeamsBot
from bot.teams.cards import MAX_CARD_BYTES
from bot.teams.store import TeamsStore
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter
from chat2sql.settings import Settings
from inference.protocol import GenerateRequest, GenerateResponse
from schemas.registry import Registry
from tests.support.assistant import assistant_config
from tests.support.clients import ScriptedClient

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP_ID = "00000000-0000-0000-0000-0000000000b0"
BOT = {"id": f"28:{APP_ID}", "name": "chat2sql"}
TEAM_CHANNEL = "19:abc123@thread.tacv2"
SMBA = "https://smba.trafficmanager.net/amer/"
ADMIN_AAD = "aad-admin"
RIG_SQL = "SELECT name FROM employees ORDER BY id"  # what the ``rig`` fixture's model answers


class SlowClient(ScriptedClient):
    """A scripted model that takes ``delay_s`` per answer: past the Teams reply window."""

    def __init__(self, answers: list[str | Exception], delay_s: float) -> None:
        super().__init__(answers)
        self.delay_s = delay_s

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        await asyncio.sleep(self.delay_s)
        return await super().generate(request)


# --- activities -----------------------------------------------------------------------------


def _user(aad: str) -> dict[str, str]:
    return {"id": f"29:{aad}", "name": aad.title(), "aadObjectId": aad}


def channel_message(
    text: str, *, mention: bool = True, id: str = "1700000000001", root: str | None = None, user: str = "aad-alice"
) -> dict[str, Any]:
    """A post in a team channel (``root``: the thread it replies in; a new post is its own root)."""
    body = f"<at>chat2sql</at> {text}" if mention else text
    activity: dict[str, Any] = {
        "type": "message",
        "id": id,
        "channelId": "msteams",
        "serviceUrl": SMBA,
        "from": _user(user),
        "recipient": BOT,
        "conversation": {
            "id": f"{TEAM_CHANNEL};messageid={root or id}",
            "conversationType": "channel",
            "isGroup": True,
            "tenantId": TENANT,
        },
        "text": body,
        "textFormat": "plain",
        "channelData": {"tenant": {"id": TENANT}, "team": {"id": "19:team"}, "channel": {"id": TEAM_CHANNEL}},
    }
    if mention:
        activity["entities"] = [{"type": "mention", "mentioned": BOT, "text": "<at>chat2sql</at>"}]
    return activity


def group_message(text: str, *, mention: bool, id: str = "1700000000101") -> dict[str, Any]:
    activity = channel_message(text, mention=mention, id=id)
    activity["conversation"] = {
        "id": "19:group@thread.v2",
        "conversationType": "groupChat",
        "isGroup": True,
        "tenantId": TENANT,
    }
    return activity


def personal_message(text: str, *, id: str = "1700000000201", user: str = "aad-alice") -> dict[str, Any]:
    return {
        "type": "message",
        "id": id,
        "channelId": "msteams",
        "serviceUrl": SMBA,
        "from": _user(user),
        "recipient": BOT,
        "conversation": {"id": f"a:1personal-{user}", "conversationType": "personal", "tenantId": TENANT},
        "text": text,
        "channelData": {"tenant": {"id": TENANT}},
    }


def card_action(value: dict[str, Any], *, id: str = "1700000000301", root: str = "1700000000001") -> dict[str, Any]:
    """What Teams posts when a card's Action.Submit is pressed: a message with ``value``."""
    activity = channel_message("", mention=False, id=id, root=root)
    activity["text"] = ""
    activity["value"] = value
    return activity


# --- in-process: a recording adapter ---------------------------------------------------------


class RecordingAdapter(ChannelAdapter):
    """Records every activity the bot sends, in the turn or proactively."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.sent: list[Activity] = []
        self.proactive: list[Activity] = []
        self._in_proactive = False

    async def send_activities(self, context: TurnContext, activities: list[Activity]) -> list[ResourceResponse]:  # type: ignore[override]
        for a in activities:
            (self.proactive if context.activity.name == "ContinueConversation" else self.sent).append(a)
        return [ResourceResponse(id=f"sent-{len(self.sent) + len(self.proactive)}") for _ in activities]

    async def update_activity(self, context: TurnContext, activity: Activity) -> None:  # type: ignore[override]
        raise NotImplementedError

    async def delete_activity(self, context: TurnContext, reference: ConversationReference) -> None:  # type: ignore[override]
        raise NotImplementedError

    async def continue_conversation_with_claims(  # type: ignore[override]
        self,
        claims_identity: ClaimsIdentity,
        continuation_activity: Activity,
        callback: Callable[[TurnContext], Awaitable[Any]],
        audience: str | None = None,
    ) -> None:
        context = TurnContext(self, continuation_activity, claims_identity)
        await self.run_pipeline(context, callback)

    async def turn(self, bot: Any, payload: dict[str, Any]) -> None:
        await self.run_pipeline(TurnContext(self, Activity.model_validate(payload)), bot.on_turn)


# --- a TeamsBot in process -------------------------------------------------------------------


@dataclass
class Rig:
    bot: TeamsBot
    adapter: RecordingAdapter
    assistant: Assistant
    store: TeamsStore
    client: ScriptedClient
    background: Background

    async def turn(self, payload: dict[str, object]) -> None:
        await self.adapter.turn(self.bot, payload)


async def teams_rig(settings: Settings, sqlite_url: str, client: ScriptedClient, **config: object) -> Rig:
    """A TeamsBot over the core (``hr`` registered by the Teams admin), a reply window of
    2 s; the core's retries do not wait."""

    async def instant(_: float) -> None:
        return None

    assistant = assistant_over(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=client,
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse(f"teams:{ADMIN_AAD}"),
        config=assistant_config(cache_ttl_s=0, **config),
        sleep=instant,
    )
    admin = Where(platform="teams", workspace=TENANT, channel=TEAM_CHANNEL, user_id=ADMIN_AAD)
    registered = await assistant.handle(f"admin register hr {sqlite_url} People", admin)
    assert "Registered" in registered.text, registered.text
    adapter = RecordingAdapter()
    store = TeamsStore(engine=create_engine(settings.effective_registry_url))
    background = Background()
    bot = TeamsBot(
        assistant=assistant,
        store=store,
        adapter=adapter,
        claims=ClaimsIdentity,
        metrics=BotMetrics(),
        background=background,
        reply_window_s=2.0,
    )
    return Rig(bot, adapter, assistant, store, client, background)


def card_in(activity: Activity) -> dict[str, Any]:
    """The one Adaptive Card attached to ``activity``, checked against the 1.5 rules."""
    (attachment,) = activity.attachments or []
    assert attachment.content_type == "application/vnd.microsoft.card.adaptive"
    content = attachment.content
    assert isinstance(content, dict) and card_problems(content) == [], content
    return content


def messages_of(activities: list[Activity]) -> list[Activity]:
    return [a for a in activities if a.type == "message"]


# --- over HTTP: the fake Bot Connector and a token issuer -----------------------------------


@dataclass
class Posted:
    conversation_id: str
    reply_to: str | None
    body: dict[str, Any]
    authorization: str | None


@dataclass
class FakeConnector:
    """A real HTTP server standing in for the Bot Connector (and the token keys endpoint)."""

    url: str = ""
    posted: list[Posted] = field(default_factory=list)
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def messages(self) -> list[Posted]:
        return [p for p in self.posted if p.body.get("type") == "message"]

    async def wait_for(self, count: int, *, timeout_s: float = 10.0) -> list[Posted]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, got {[p.body for p in self.posted]}")
            await asyncio.sleep(0.02)
        return self.messages()


@asynccontextmanager
async def fake_connector() -> AsyncIterator[FakeConnector]:
    fake = FakeConnector()

    async def activities(request: web.Request) -> web.Response:
        fake.posted.append(
            Posted(
                conversation_id=urllib.parse.unquote(request.match_info["conversation"]),
                reply_to=request.match_info.get("activity"),
                body=await request.json(),
                authorization=request.headers.get("Authorization"),
            )
        )
        return web.json_response({"id": f"bot-{len(fake.posted)}"})

    async def keys(_: web.Request) -> web.Response:
        return web.json_response(fake.jwks)

    app = web.Application()
    app.router.add_post("/v3/conversations/{conversation}/activities", activities)
    app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", activities)
    app.router.add_get("/keys", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}/"
    try:
        yield fake
    finally:
        await runner.cleanup()


class TokenIssuer:
    """Signs Bot Connector-style tokens with a test RSA key and publishes it as a JWKS."""

    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

        return {
            "keys": [
                {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": b64(numbers.n), "e": b64(numbers.e)}
            ]
        }

    def token(self, *, aud: str = APP_ID, iss: str = "https://api.botframework.com", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": iss, "aud": aud, "serviceurl": SMBA, "nbf": now - 10, "exp": now + 3600, **claims}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


class FixedTokenConnections:
    """Outbound token provider for auth-on tests (MSAL would call Entra)."""

    TOKEN = "outbound-test-token"

    class _Provider(AnonymousTokenProvider):
        async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
            return FixedTokenConnections.TOKEN

    def __init__(self, auth: AgentAuthConfiguration) -> None:
        self._auth = auth
        self._provider = self._Provider()

    def get_connection(self, connection_name: str) -> Any:
        return self._provider

    def get_default_connection(self) -> Any:
        return self._provider

    def get_token_provider(self, claims_identity: ClaimsIdentity, service_url: str) -> Any:
        return self._provider

    def get_token_provider_from_activity(self, claims_identity: ClaimsIdentity, activity: Activity) -> Any:
        return self._provider

    def get_default_connection_configuration(self) -> AgentAuthConfiguration:
        return self._auth


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 in this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# --- Adaptive Card 1.5 constraints ------------------------------------------------------------

ELEMENTS_1_5 = {
    "TextBlock": "1.0",
    "RichTextBlock": "1.2",
    "TextRun": "1.2",
    "FactSet": "1.0",
    "Table": "1.5",
    "TableRow": "1.5",
    "TableCell": "1.5",
    "Input.Text": "1.0",
    "Image": "1.0",
}
ACTIONS_1_5 = {"Action.Submit": "1.0", "Action.ShowCard": "1.0"}


def card_problems(card: dict[str, Any], *, top: bool = True) -> list[str]:
    """What in ``card`` breaks the Adaptive Card 1.5 rules we rely on (empty: fine)."""
    problems: list[str] = []
    if card.get("type") != "AdaptiveCard":
        problems.append("not an AdaptiveCard")
    if top:
        version = str(card.get("version", ""))
        if not version or tuple(map(int, version.split("."))) > (1, 5):
            problems.append(f"version {version!r} is not ≤ 1.5")
        size = len(json.dumps(card, ensure_ascii=False).encode())
        if size > MAX_CARD_BYTES:
            problems.append(f"{size} bytes is over {MAX_CARD_BYTES}")
    for element in card.get("body", []):
        problems += _element_problems(element)
    for action in card.get("actions", []):
        kind = action.get("type")
        if kind not in ACTIONS_1_5:
            problems.append(f"unknown action {kind}")
        elif not action.get("title"):
            problems.append(f"{kind} without a title")
        elif action.get("mode", "primary") not in ("primary", "secondary"):
            problems.append(f"unknown action mode {action.get('mode')!r}")
        elif kind == "Action.Submit" and not isinstance(action.get("data"), dict):
            problems.append("Action.Submit data must be an object")
        elif kind == "Action.ShowCard":
            problems += card_problems(action.get("card", {}), top=False)
    return problems


def _element_problems(element: dict[str, Any]) -> list[str]:
    kind = element.get("type")
    if kind not in ELEMENTS_1_5:
        return [f"unknown element {kind}"]
    problems: list[str] = []
    if kind in ("TextBlock", "TextRun") and not isinstance(element.get("text"), str):
        problems.append(f"{kind} without text")
    if kind == "RichTextBlock":
        problems += [p for run in element.get("inlines", []) for p in _element_problems(run)]
    if kind == "FactSet":
        for fact in element.get("facts", []):
            if not (isinstance(fact.get("title"), str) and isinstance(fact.get("value"), str)):
                problems.append("a fact needs string title and value")
    if kind == "Image":
        url = element.get("url")
        if not (isinstance(url, str) and (url.startswith("https://") or url.startswith("data:image/png;base64,"))):
            problems.append("an image needs an https or data:image/png URL")
        if not element.get("altText"):
            problems.append("an image without altText")
    if kind == "Input.Text" and not element.get("id"):
        problems.append("input without id")
    if kind == "Table":
        width = len(element.get("columns", []))
        for row in element.get("rows", []):
            problems += _element_problems(row)
            if len(row.get("cells", [])) != width:
                problems.append("a table row does not match the columns")
    if kind == "TableRow":
        problems += [p for cell in element.get("cells", []) for p in _element_problems(cell)]
    if kind == "TableCell":
        problems += [p for item in element.get("items", []) for p in _element_problems(item)]
    return problems


def card_of(body: dict[str, Any]) -> dict[str, Any]:
    """The Adaptive Card in a sent activity (JSON as the connector received it)."""
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content: dict[str, Any] = attachment["content"]
    assert card_problems(content) == [], card_problems(content)
    return content
