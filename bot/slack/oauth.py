"""Multi-workspace installs: Bolt's OAuth flow (``/slack/install``, ``/slack/oauth_redirect``)
over slack_sdk's SQLAlchemy installation and OAuth-state stores, in the registry database,
behind Bolt's async interfaces.

slack_sdk's stores are synchronous; each call runs in a worker thread so the event loop
keeps acknowledging requests. slack_sdk owns these tables' layout (``slack_installations``,
``slack_bots``, ``slack_oauth_states``); they are created when OAuth starts, if missing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine

log = logging.getLogger(__name__)

STATE_EXPIRATION_S = 600
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

# The manifest's bot scopes (deploy/slack/manifest.yaml); a test keeps the two in step.
BOT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "chat:write",
    "chat:write.public",
    "commands",
    "files:write",
    "groups:history",
    "im:history",
    "mpim:history",
)


class InstallationStore(AsyncInstallationStore):
    def __init__(self, *, client_id: str, engine: Engine) -> None:
        self._sync = SQLAlchemyInstallationStore(client_id=client_id, engine=engine, logger=log)

    @property
    def logger(self) -> logging.Logger:
        return log

    def create_tables(self) -> None:
        self._sync.create_tables()  # type: ignore[no-untyped-call]

    async def async_save(self, installation: Installation) -> None:
        await asyncio.to_thread(self._sync.save, installation)

    async def async_save_bot(self, bot: Bot) -> None:
        await asyncio.to_thread(self._sync.save_bot, bot)

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        return await asyncio.to_thread(
            self._sync.find_bot,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        return await asyncio.to_thread(
            self._sync.find_installation,
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self._sync.delete_bot, enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await asyncio.to_thread(
            self._sync.delete_installation, enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self._sync.delete_all, enterprise_id=enterprise_id, team_id=team_id)


class StateStore(AsyncOAuthStateStore):
    def __init__(self, *, engine: Engine, expiration_s: int = STATE_EXPIRATION_S) -> None:
        self._sync = SQLAlchemyOAuthStateStore(expiration_seconds=expiration_s, engine=engine, logger=log)

    @property
    def logger(self) -> logging.Logger:
        return log

    def create_tables(self) -> None:
        self._sync.create_tables()  # type: ignore[no-untyped-call]

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self._sync.issue)

    async def async_consume(self, state: str) -> bool:
        return await asyncio.to_thread(self._sync.consume, state)


def oauth_flow(
    *, client: AsyncWebClient, client_id: str, client_secret: str, engine: Engine, logger: logging.Logger
) -> tuple[AsyncOAuthFlow, list[InstallationStore | StateStore]]:
    """Bolt's install flow, and its stores (whose tables ``create_tables`` makes at start-up)."""
    installations = InstallationStore(client_id=client_id, engine=engine)
    states = StateStore(engine=engine)
    flow = AsyncOAuthFlow(
        client=client,
        logger=logger,
        settings=AsyncOAuthSettings(
            client_id=client_id,
            client_secret=client_secret,
            scopes=list(BOT_SCOPES),
            installation_store=installations,
            state_store=states,
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
        ),
    )
    return flow, [installations, states]
