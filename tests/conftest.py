"""Shared fixtures: real SQLite files and real PostgreSQL / MariaDB databases on this machine,
the registry, the models, Redis, and the core and a Teams bot over a scripted model.

The servers are the ones running on localhost (see .ci/run). In CI a missing server is a
failure, never a skip. What the fixtures are made of lives in ``tests/support``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from chat2sql.settings import Settings
from schemas.registry import Registry
from tests.support.databases import (  # bench/ imports these from here too
    REDIS_URL,
    make_sqlite,
    my_create_database,
    my_drop_database,
    my_reader_url,
    pg_create_database,
    pg_drop_database,
    pg_reader_url,
    sample_script,
    unavailable,
)

if TYPE_CHECKING:
    from bot.core.assistant import Assistant
    from tests.support.teams import Rig


# --- SQLite -----------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return make_sqlite(tmp_path / "sample.db", sample_script("sqlite"))


# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The sample database, as the read-only role sees it."""
    name = f"c2s_test_{uuid.uuid4().hex[:8]}"
    pg_create_database(name, sample_script("postgres"))
    yield pg_reader_url(name)
    pg_drop_database(name)


# --- MariaDB / MySQL --------------------------------------------------------------------


@pytest.fixture
def my_url() -> Iterator[str]:
    """The sample database, as the read-only user sees it."""
    name = f"c2s_test_{uuid.uuid4().hex[:8]}"
    my_create_database(name, sample_script("mysql"))
    yield my_reader_url(name)
    my_drop_database(name)


# --- Registry ---------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def pg_registry_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings whose registry is a fresh database on the PostgreSQL server."""
    name = f"c2s_registry_{uuid.uuid4().hex[:8]}"
    url = pg_create_database(name).replace("postgresql://", "postgresql+psycopg://")
    yield Settings(data_dir=tmp_path / "data", registry_url=url, _env_file=None)  # type: ignore[call-arg]
    pg_drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def registry_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The embedded SQLite registry, then a PostgreSQL one."""
    if request.param == "sqlite":
        return settings
    return request.getfixturevalue("pg_registry_settings")  # type: ignore[no-any-return]


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry.open(settings)
    yield reg
    reg.close()


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def sample_url(request: pytest.FixtureRequest) -> str:
    """The sample database on each engine in turn."""
    return str(
        request.getfixturevalue({"sqlite": "sqlite_url", "postgres": "pg_url", "mysql": "my_url"}[request.param])
    )


# --- Models -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The offline Qwen2.5-Coder-0.5B, converted once (about a minute) into data/test-models."""
    from tests.support.models import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture(scope="session")
def tiny_model(embedded_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tokenizer_from=embedded_model)


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.support.models import build_tiny_adapter

    folder = tmp_path_factory.mktemp("adapters")
    return {
        "alpha": build_tiny_adapter(folder / "alpha", base=tiny_model, seed=1),
        "beta": build_tiny_adapter(folder / "beta", base=tiny_model, seed=2),
    }


# --- Redis ------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    """The Redis server on this machine (database 15); tests use unique key prefixes."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


# --- The core and a Teams bot over a scripted model ----------------------------------------


@pytest_asyncio.fixture
async def bot(settings: Settings, sqlite_url: str) -> AsyncIterator[Assistant]:
    """The core over an instant model that always answers ``SELECT name FROM employees ORDER
    BY id``, the sample database registered as ``hr`` by ``ADMIN``."""
    from tests.support.assistant import ADMIN, make_assistant
    from tests.support.clients import ScriptedClient

    client = ScriptedClient(["SELECT name FROM employees ORDER BY id"])
    assistant = make_assistant(settings, client)
    reply = await assistant.handle(f"admin register hr {sqlite_url} People data", ADMIN)
    assert reply.kind == "text" and "5 tables" in reply.text, reply.text
    yield assistant
    await assistant.close()


@pytest_asyncio.fixture
async def rig(settings: Settings, sqlite_url: str) -> AsyncIterator[Rig]:
    """A TeamsBot in process whose model always answers ``RIG_SQL``."""
    from tests.support.clients import ScriptedClient
    from tests.support.teams import RIG_SQL, teams_rig

    r = await teams_rig(settings, sqlite_url, ScriptedClient([RIG_SQL]))
    yield r
    await r.background.drain()
    r.store.close()
    await r.assistant.close()
