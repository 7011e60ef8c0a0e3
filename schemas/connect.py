"""Parse registered URLs and open read-only engines on them.

Every connection chat2sql opens to a registered database is read-only at the database
level (SQLite ``mode=ro``; PostgreSQL ``default_transaction_read_only``; MySQL/MariaDB
``SET SESSION TRANSACTION READ ONLY``), so that neither introspection nor a preview can
write, whatever SQL reaches it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from chat2sql.errors import InvalidURL
from schemas.dialects import Dialect, dialect_for_backend

CONNECT_TIMEOUT_S = 10
_DRIVERS: dict[Dialect, str] = {"postgres": "psycopg", "mysql": "pymysql", "sqlite": "pysqlite"}


def parse_url(url: str) -> URL:
    """Check that ``url`` names a supported database we can reach; no connection yet."""
    if not url or not url.strip():
        raise InvalidURL("it is empty")
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError):
        raise InvalidURL("expected a URL like postgresql://user:password@host:5432/dbname") from None
    dialect = dialect_for_backend(parsed.get_backend_name())
    if dialect == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise InvalidURL("an in-memory SQLite database cannot be registered; give a file path")
    elif not parsed.database:
        raise InvalidURL("it names no database (add /dbname at the end)")
    elif not parsed.host:
        raise InvalidURL("it names no host")
    return parsed


def dialect_of(url: str | URL) -> Dialect:
    parsed = url if isinstance(url, URL) else parse_url(url)
    return dialect_for_backend(parsed.get_backend_name())


def sqlite_path(url: URL) -> Path:
    return Path(url.database or "").expanduser()


def readonly_engine(url: str, *, statement_timeout_s: float) -> Engine:
    """An engine whose every connection is read-only at the database level."""
    parsed = parse_url(url)
    dialect = dialect_of(parsed)
    if dialect == "sqlite":
        return _sqlite_engine(parsed)
    driver_url = parsed.set(drivername=f"{parsed.get_backend_name()}+{_DRIVERS[dialect]}")
    timeout_ms = int(statement_timeout_s * 1000)
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if dialect == "postgres":
        connect_args["options"] = (
            f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}"
            f" -c idle_in_transaction_session_timeout={max(timeout_ms * 4, 60_000)}"
        )
    else:
        connect_args["read_timeout"] = int(statement_timeout_s) + CONNECT_TIMEOUT_S
    engine = create_engine(driver_url, connect_args=connect_args, poolclass=NullPool)
    if dialect == "mysql":
        event.listen(engine, "connect", _mysql_session_readonly)
    return engine


def _mysql_session_readonly(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_path(url)
    if not path.is_file():
        raise InvalidURL(f"no SQLite database file at {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"

    def _connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=CONNECT_TIMEOUT_S)
        conn.execute("PRAGMA query_only = ON")
        return conn

    return create_engine("sqlite+pysqlite://", creator=_connect, poolclass=NullPool)
