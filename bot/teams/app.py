"""Microsoft Teams on the Microsoft 365 Agents SDK (successor of the archived Bot Framework
SDK): ``POST /api/messages`` in the chat server, behind the SDK's JWT validation of Bot
Connector tokens.

Inbound: no valid token for our app id → 401 before anything runs. Anonymous requests are
accepted only with ``CHAT2SQL_TEAMS_ALLOW_ANONYMOUS=true`` (development; a loud warning at
start-up). The activity's ``serviceUrl`` must be a Microsoft Bot Connector host (https)
unless anonymous mode is on, so a forged activity cannot make us post a token elsewhere.
Outbound: MSAL tokens for the app (client secret or user-assigned managed identity).
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import (
    AccessTokenProviderBase,
    AgentAuthConfiguration,
    AnonymousTokenProvider,
    ClaimsIdentity,
    Connections,
    OutboundHostValidator,
    RestChannelServiceClientFactory,
    TurnContext,
)
from microsoft_agents.hosting.core.authorization import AuthTypes, JwtTokenValidator
from microsoft_agents.hosting.core.connector import ConnectorClientBase
from microsoft_agents.hosting.fastapi import CloudAdapter

from bot.platform import ServerContext
from bot.teams.bot import PLATFORM, REPLY_WINDOW_S, TeamsBot
from bot.teams.store import TeamsStore
from chat2sql import db
from chat2sql.settings import Settings

log = logging.getLogger(__name__)

ROUTE = "/api/messages"
ANONYMOUS_WARNING = (
    "TEAMS ANONYMOUS MODE: /api/messages accepts requests WITHOUT a Bot Connector token "
    "(CHAT2SQL_TEAMS_ALLOW_ANONYMOUS=true). Anyone who can reach this server can use the bot. "
    "Development only: never expose this server."
)


class TeamsPlatform:
    """The Teams front end: ``mount`` adds ``POST /api/messages``."""

    name = PLATFORM

    def __init__(
        self,
        ctx: ServerContext,
        *,
        auth: AgentAuthConfiguration,
        connections: Connections,
        store: TeamsStore,
        service_url: str | None = None,
        reply_window_s: float = REPLY_WINDOW_S,
        streaming: bool = True,
    ) -> None:
        self._ctx = ctx
        self._auth = auth
        self._store = store
        self.adapter = CloudAdapter(
            channel_service_client_factory=_ClientFactory(connections, service_url=service_url),
            host_validator=OutboundHostValidator(enabled=not auth.ANONYMOUS_ALLOWED),
        )
        self.adapter.on_turn_error = _on_turn_error
        self.bot = TeamsBot(
            assistant=ctx.assistant,
            store=store,
            adapter=self.adapter,
            claims=self._proactive_claims,
            metrics=ctx.metrics,
            background=ctx.background,
            reply_window_s=reply_window_s,
            streaming=streaming,
        )

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return bool(settings.teams_app_id) or settings.teams_allow_anonymous

    @classmethod
    def from_settings(cls, ctx: ServerContext) -> TeamsPlatform:
        s = ctx.settings
        auth = auth_configuration(s)
        connections: Connections
        if s.teams_app_id:
            from microsoft_agents.authentication.msal import MsalConnectionManager

            connections = MsalConnectionManager(connections_configurations={"SERVICE_CONNECTION": auth})
        else:
            connections = AnonymousConnections()
        store = TeamsStore(engine=db.open_engine(s))
        return cls(
            ctx,
            auth=auth,
            connections=connections,
            store=store,
            service_url=s.teams_service_url,
            reply_window_s=s.teams_reply_window_s,
            streaming=s.teams_streaming,
        )

    def mount(self, app: FastAPI) -> None:
        app.add_api_route(ROUTE, self._messages, methods=["POST"], include_in_schema=False)

    async def start(self) -> None:
        if self._auth.ANONYMOUS_ALLOWED:
            log.warning("%s\n%s\n%s", "!" * 80, ANONYMOUS_WARNING, "!" * 80)
        for pending in await asyncio.to_thread(self._store.pending):
            self._ctx.background.spawn(self.bot.resume(pending), name="teams-resume")

    async def stop(self) -> None:
        self._store.close()

    async def _messages(self, request: Request) -> Response:
        started = time.perf_counter()
        identity = await authorize(request.headers.get("Authorization"), self._auth)
        if identity is None:
            self._ctx.metrics.rejected.labels(PLATFORM).inc()
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        request.state.claims_identity = identity
        response = await self.adapter.process(request, self.bot)
        self._ctx.metrics.ack_seconds.labels(PLATFORM, "activity").observe(time.perf_counter() - started)
        return response or Response(status_code=202)

    def _proactive_claims(self) -> ClaimsIdentity:
        if not self._auth.CLIENT_ID:
            return ClaimsIdentity()  # anonymous: no token on outbound calls
        return self.adapter.create_claims_identity(self._auth.CLIENT_ID)


def auth_configuration(settings: Settings) -> AgentAuthConfiguration:
    user_mi = settings.teams_auth_type == "user_managed_identity"
    return AgentAuthConfiguration(
        auth_type=AuthTypes.user_managed_identity if user_mi else AuthTypes.client_secret,
        client_id=settings.teams_app_id,
        tenant_id=settings.teams_tenant_id,
        client_secret=settings.teams_app_password.get_secret_value() if settings.teams_app_password else None,
        anonymous_allowed=settings.teams_allow_anonymous,
        validate_issuer=True,
    )


async def authorize(header: str | None, auth: AgentAuthConfiguration) -> ClaimsIdentity | None:
    """The caller's claims from a valid Bot Connector token, or None (answer 401).

    The SDK's ``JwtTokenValidator`` checks the signature against the issuer's published
    keys, the audience (our app id), the issuer and the tenant binding.
    """
    if not header:
        return ClaimsIdentity() if auth.ANONYMOUS_ALLOWED else None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return await JwtTokenValidator(auth).validate_token(token.strip())
    except Exception as err:  # PyJWTError, ValueError, an unreachable key endpoint: all refuse
        log.warning("teams request refused: %s", type(err).__name__)
        return None


class AnonymousConnections(Connections):
    """Development mode without an app id: outbound calls carry no token."""

    _provider = AnonymousTokenProvider()

    def get_connection(self, connection_name: str) -> AccessTokenProviderBase:
        return self._provider

    def get_default_connection(self) -> AccessTokenProviderBase:
        return self._provider

    def get_token_provider(self, claims_identity: ClaimsIdentity, service_url: str) -> AccessTokenProviderBase:
        return self._provider

    def get_token_provider_from_activity(
        self, claims_identity: ClaimsIdentity, activity: Activity
    ) -> AccessTokenProviderBase:
        return self._provider

    def get_default_connection_configuration(self) -> AgentAuthConfiguration:
        return AgentAuthConfiguration(anonymous_allowed=True)


class _ClientFactory(RestChannelServiceClientFactory):
    """The SDK's factory, optionally sending everything to one Bot Connector URL."""

    def __init__(self, connections: Connections, *, service_url: str | None) -> None:
        super().__init__(connections)
        self._service_url = service_url

    async def create_connector_client(
        self,
        context: TurnContext | None,
        claims_identity: ClaimsIdentity,
        service_url: str,
        audience: str,
        scopes: list[str] | None = None,
        use_anonymous: bool = False,
    ) -> ConnectorClientBase:
        return await super().create_connector_client(
            context, claims_identity, self._service_url or service_url, audience, scopes, use_anonymous
        )


async def _on_turn_error(context: TurnContext, error: Exception) -> None:
    """The SDK's default posts the exception text into the chat; we log it instead."""
    log.error("teams turn failed", exc_info=(type(error), error, error.__traceback__))
