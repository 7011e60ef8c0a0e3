"""One engine per database URL: every store of the process shares the registry database's
engine, and it is migrated once; the last holder's release disposes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from bot.server import build_app
from bot.store import BotStore
from chat2sql import db
from chat2sql.settings import Settings
from inference.keys import KeyStore
from schemas.registry import Registry


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"engines": [], "upgrades": []}
    create, migrate = db.create_engine, db.migrate  # open_migrated looks both up at call time

    def counted_create(url: str, **kwargs: Any) -> Engine:
        seen["engines"].append(url)
        return create(url, **kwargs)

    def counted_migrate(engine: Engine, upgrade: Callable[[Engine], None]) -> None:
        def counted(e: Engine) -> None:
            seen["upgrades"].append(str(e.url))
            upgrade(e)

        migrate(engine, counted)

    monkeypatch.setattr(db, "create_engine", counted_create)
    monkeypatch.setattr(db, "migrate", counted_migrate)
    return seen


def test_the_stores_share_one_engine_migrated_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _counting(monkeypatch)
    registry, store, keys = Registry.open(settings), BotStore.open(settings), KeyStore.open(settings)
    assert len(seen["engines"]) == 1 and len(seen["upgrades"]) == 1
    assert store.engine is registry._engine is keys._engine
    registry.close()
    keys.close()
    assert db.engines_open() >= 1 and store.audit(limit=1) == []  # still held by the store
    store.close()
    reopened = BotStore.open(settings)  # after the last release: a fresh engine, migrated again
    assert len(seen["engines"]) == 2 and len(seen["upgrades"]) == 2
    reopened.close()


def test_server_start_up_opens_one_engine_per_url(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m bot serve` with Slack (OAuth stores), Teams and /mcp: one engine, one upgrade."""
    configured = settings.model_copy(
        update={
            "inference": "worker",
            "worker_url": "http://127.0.0.1:9",
            "worker_api_key": SecretStr("c2s_test"),
            "slack_signing_secret": SecretStr("s"),
            "slack_client_id": "111.222",
            "slack_client_secret": SecretStr("c"),
            "teams_allow_anonymous": True,
            "mcp_http": True,
        }
    )
    before = db.engines_open()
    seen = _counting(monkeypatch)
    with TestClient(build_app(configured)) as client:
        assert client.get("/healthz").json()["platforms"] == ["slack", "teams"]
        assert seen["engines"] == [configured.effective_registry_url]
        assert len(seen["upgrades"]) == 1
    assert db.engines_open() == before  # shutdown released every holder
