"""Shared fixtures: real SQLite files and real PostgreSQL / MariaDB databases on this machine.

The servers are the ones running on localhost (see .ci/run). In CI a missing server is a
failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import psycopg.sql
import pymysql
import pytest

from chat2sql.settings import Settings
from schemas.registry import Registry

FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
MY_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
# The least-privileged account production should register: a LOGIN role / user that can
# only read the test database (registration refuses the superuser admins above).
READER = "c2s_reader"
READER_PASSWORD = "c2s-Reader_pw"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(server: str, exc: Exception) -> None:
    message = f"{server} is not reachable on localhost: {type(exc).__name__}: {exc}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def sample_script(dialect: str) -> str:
    return (FIXTURES / "sample" / f"{dialect}.sql").read_text(encoding="utf-8")


def split_script(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


# --- SQLite -----------------------------------------------------------------------------


def make_sqlite(path: Path, script: str) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return make_sqlite(tmp_path / "sample.db", sample_script("sqlite"))


# --- PostgreSQL -------------------------------------------------------------------------


def pg_admin() -> psycopg.Connection:
    return psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=5)


def pg_create_database(name: str, script: str | None = None) -> str:
    try:
        admin = pg_admin()
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    if script:
        with psycopg.connect(**{**PG_ADMIN, "dbname": name}, autocommit=True) as conn:
            conn.execute(script)  # type: ignore[call-overload]
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def pg_drop_database(name: str) -> None:
    with pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_reader_url(name: str) -> str:
    """Let the reader role read database ``name`` (tables made later too); its URL.

    Trust authentication on localhost: the URL carries no password (tests add one to check
    masking; the server ignores it)."""
    with pg_admin() as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,)).fetchone()
        if not exists:
            # a parallel test run may create it in the meantime
            with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                admin.execute(f"CREATE ROLE {READER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        admin.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {READER}')
    with psycopg.connect(**{**PG_ADMIN, "dbname": name}, autocommit=True) as conn:
        for namespace in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
        ).fetchall():
            schema = psycopg.sql.Identifier(namespace[0])
            conn.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA {} TO c2s_reader").format(schema))
            conn.execute(psycopg.sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO c2s_reader").format(schema))
            conn.execute(
                psycopg.sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO c2s_reader").format(
                    schema
                )
            )
    return f"postgresql://{READER}@127.0.0.1:5432/{name}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The sample database, as the read-only role sees it."""
    name = f"c2s_test_{uuid.uuid4().hex[:8]}"
    pg_create_database(name, sample_script("postgres"))
    yield pg_reader_url(name)
    pg_drop_database(name)


# --- MariaDB / MySQL --------------------------------------------------------------------


def my_admin() -> pymysql.connections.Connection:
    return pymysql.connect(**MY_ADMIN, autocommit=True, connect_timeout=5, charset="utf8mb4")


def my_create_database(name: str, script: str | None = None) -> str:
    try:
        admin = my_admin()
    except pymysql.err.OperationalError as exc:
        _unavailable("MariaDB", exc)
    with admin, admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        if script:
            cur.execute(f"USE `{name}`")
            for statement in split_script(script):
                cur.execute(statement)
    return f"mysql://root@127.0.0.1:3306/{name}"


def my_drop_database(name: str) -> None:
    with my_admin() as admin, admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        for host in READER_HOSTS:  # MariaDB keeps database grants after DROP DATABASE
            cur.execute("SELECT 1 FROM mysql.db WHERE User = %s AND Host = %s AND Db = %s", (READER, host, name))
            if cur.fetchone():
                cur.execute(f"REVOKE ALL PRIVILEGES ON `{name}`.* FROM '{READER}'@'{host}'")


READER_HOSTS = ("127.0.0.1", "localhost")


def my_reader_url(name: str) -> str:
    """Let the reader user read database ``name`` and nothing else (SELECT; SHOW VIEW, which
    reflecting a view needs); its URL."""
    with my_admin() as admin, admin.cursor() as cur:
        for host in READER_HOSTS:
            cur.execute(f"CREATE USER IF NOT EXISTS '{READER}'@'{host}' IDENTIFIED BY '{READER_PASSWORD}'")
            cur.execute(f"GRANT SELECT, SHOW VIEW ON `{name}`.* TO '{READER}'@'{host}'")
    return f"mysql://{READER}:{READER_PASSWORD}@127.0.0.1:3306/{name}"


@pytest.fixture
def my_url() -> Iterator[str]:
    """The sample database, as the read-only user sees it."""
    name = f"c2s_test_{uuid.uuid4().hex[:8]}"
    my_create_database(name, sample_script("mysql"))
    yield my_reader_url(name)
    my_drop_database(name)


def with_password(url: str, password: str) -> str:
    """``url`` with its password replaced (percent-encoded as a URL needs it)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)


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
    from tests.models import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture(scope="session")
def tiny_model(embedded_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tokenizer_from=embedded_model)


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.models import build_tiny_adapter

    folder = tmp_path_factory.mktemp("adapters")
    return {
        "alpha": build_tiny_adapter(folder / "alpha", base=tiny_model, seed=1),
        "beta": build_tiny_adapter(folder / "beta", base=tiny_model, seed=2),
    }


# --- Redis ------------------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_url() -> str:
    """The Redis server on this machine (database 15); tests use unique key prefixes."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    finally:
        client.close()
    return REDIS_URL
