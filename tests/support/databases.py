"""The sample databases on this machine: real SQLite files and real PostgreSQL / MariaDB
databases on the servers running on localhost (see .ci/run), with the least-privileged
reader account production should register. ``tests/conftest.py`` builds its fixtures from
these; tests that need a database of their own call them directly.

In CI a missing server is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import NoReturn

import psycopg
import psycopg.sql
import pymysql
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
MY_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
# The least-privileged account production should register: a LOGIN role / user that can
# only read the test database (registration refuses the superuser admins above).
READER = "c2s_reader"
READER_PASSWORD = "c2s-Reader_pw"
READER_HOSTS = ("127.0.0.1", "localhost")
REDIS_URL = "redis://127.0.0.1:6379/15"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(server: str, exc: Exception) -> NoReturn:
    """A server this test needs is down: a failure in CI, a skip elsewhere."""
    message = f"{server} is not reachable on localhost: {type(exc).__name__}: {exc}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def sample_script(dialect: str) -> str:
    return (FIXTURES / "sample" / f"{dialect}.sql").read_text(encoding="utf-8")


def split_script(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


def with_password(url: str, password: str) -> str:
    """``url`` with its password replaced (percent-encoded as a URL needs it)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)


# --- SQLite -----------------------------------------------------------------------------


def make_sqlite(path: Path, script: str) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


# --- PostgreSQL -------------------------------------------------------------------------


def pg_admin() -> psycopg.Connection:
    return psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=5)


def pg_create_database(name: str, script: str | None = None) -> str:
    try:
        admin = pg_admin()
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", exc)
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


# --- MariaDB / MySQL --------------------------------------------------------------------


def my_admin() -> pymysql.connections.Connection:
    return pymysql.connect(**MY_ADMIN, autocommit=True, connect_timeout=5, charset="utf8mb4")


def my_create_database(name: str, script: str | None = None) -> str:
    try:
        admin = my_admin()
    except pymysql.err.OperationalError as exc:
        unavailable("MariaDB", exc)
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


def my_reader_url(name: str) -> str:
    """Let the reader user read database ``name`` and nothing else (SELECT; SHOW VIEW, which
    reflecting a view needs); its URL."""
    with my_admin() as admin, admin.cursor() as cur:
        for host in READER_HOSTS:
            cur.execute(f"CREATE USER IF NOT EXISTS '{READER}'@'{host}' IDENTIFIED BY '{READER_PASSWORD}'")
            cur.execute(f"GRANT SELECT, SHOW VIEW ON `{name}`.* TO '{READER}'@'{host}'")
    return f"mysql://{READER}:{READER_PASSWORD}@127.0.0.1:3306/{name}"
