"""Run guard-accepted SQL on a connection that is read-only at the database level too.

Two layers: the guard refuses anything that is not one read-only statement, and the
connection could not write even if it let one through:

- SQLite: opened ``mode=ro`` with ``PRAGMA query_only``, an authorizer that allows only
  reads, and a progress handler that enforces the time limit;
- PostgreSQL: ``default_transaction_read_only`` plus ``BEGIN READ ONLY``, a local
  ``statement_timeout``, the statement wrapped as a derived table (so the server's own
  parser refuses anything that is not a query) through the extended protocol, always
  rolled back;
- MySQL/MariaDB: ``SET SESSION TRANSACTION READ ONLY`` plus ``START TRANSACTION READ
  ONLY``, ``max_execution_time`` (MySQL) or ``max_statement_time`` (MariaDB), one
  statement (no multi-statements flag) that the server first accepts as a derived
  table, always rolled back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from chat2sql.errors import Chat2SQLError, DatabaseUnreachable, PreviewError, PreviewFailed, PreviewTimeout
from chat2sql.messages import user_message
from chat2sql.redact import redact
from schemas import guard
from schemas.connect import readonly_engine
from schemas.dialects import Dialect, dialect_for_backend
from schemas.guard.denylist import is_denied
from schemas.model import DatabaseSchema

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 50
DEFAULT_TIMEOUT_S = 5.0
_PROGRESS_OPS = 1_000

JsonValue = None | bool | int | float | str


@dataclass(frozen=True, kw_only=True)
class PreviewResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[JsonValue, ...], ...]
    truncated: bool
    elapsed_ms: float


class QueryRunner(Protocol):
    def run(self, sql: str, *, max_rows: int, timeout_s: float) -> PreviewResult: ...


def run_checked(
    sql: str, schema: DatabaseSchema, runner: QueryRunner, *, max_rows: int, timeout_s: float
) -> dict[str, Any]:
    """Guard, then preview: the JSON object the CLI prints and the bot shows.

    The statement the user sees is capped at ``max_rows``; the one that runs asks for
    one row more, so that ``truncated`` tells whether rows were left out.
    """
    shown = guard.check(sql, schema, max_rows=max_rows)
    if not shown.ok or shown.normalized is None:
        return shown.to_json()
    probe = guard.check(sql, schema, max_rows=max_rows + 1).raise_for_rejection()
    try:
        result = runner.run(probe, max_rows=max_rows, timeout_s=timeout_s)
    except PreviewError as err:
        return {
            "sql": sql,
            "ok": False,
            "normalized": shown.normalized,
            "rule": "preview",
            "reason": user_message(err),
        }
    return {
        "sql": sql,
        "ok": True,
        "normalized": shown.normalized,
        "columns": list(result.columns),
        "rows": [list(r) for r in result.rows],
        "truncated": result.truncated,
        "elapsed_ms": result.elapsed_ms,
    }


class ReadOnlyRunner:
    """Runs one statement at a time on a read-only connection to a registered database."""

    def __init__(self, *, url: str, secrets: tuple[str, ...] = ()) -> None:
        self._url = url
        self._secrets = (*secrets, _password(url))
        self._engine: Engine | None = None
        self._engine_timeout: float | None = None

    def run(self, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS, timeout_s: float = DEFAULT_TIMEOUT_S) -> PreviewResult:
        started = time.perf_counter()
        try:
            engine = self._engine_for(timeout_s)
            connection = engine.connect()
        except (SQLAlchemyError, Chat2SQLError) as exc:
            # Host, port and driver wording stay in the log, never in a chat reply.
            log.warning("preview connection failed", extra={"fields": {"error": type(exc).__name__}})
            raise DatabaseUnreachable() from None
        dialect = dialect_for_backend(engine.dialect.name)
        with connection as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            try:
                columns, rows = _RUNNERS[dialect](raw, sql, max_rows, timeout_s)
            except PreviewTimeout:
                raise
            except Exception as exc:
                if _is_timeout(exc):
                    raise PreviewTimeout(timeout_s) from None
                raise PreviewFailed(_first_line(redact(str(exc), *self._secrets))) from None
            finally:
                _rollback_quietly(raw)
        elapsed_ms = (time.perf_counter() - started) * 1000
        truncated = len(rows) > max_rows
        return PreviewResult(
            columns=columns,
            rows=tuple(tuple(_json_value(v) for v in row) for row in rows[:max_rows]),
            truncated=truncated,
            elapsed_ms=round(elapsed_ms, 2),
        )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def _engine_for(self, timeout_s: float) -> Engine:
        if self._engine is None or self._engine_timeout != timeout_s:
            self.close()
            self._engine = readonly_engine(self._url, statement_timeout_s=timeout_s)
            self._engine_timeout = timeout_s
        return self._engine


_Rows = tuple[tuple[str, ...], list[tuple[Any, ...]]]


def _run_sqlite(raw: Any, sql: str, max_rows: int, timeout_s: float) -> _Rows:
    conn: sqlite3.Connection = raw
    deadline = time.monotonic() + timeout_s
    timed_out = False

    def _progress() -> int:
        nonlocal timed_out
        timed_out = time.monotonic() > deadline
        return 1 if timed_out else 0

    conn.set_progress_handler(_progress, _PROGRESS_OPS)
    conn.set_authorizer(_sqlite_authorizer)
    try:
        cursor = conn.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)
        columns = tuple(d[0] for d in cursor.description or ())
        cursor.close()
    except sqlite3.OperationalError:
        if timed_out:
            raise PreviewTimeout(timeout_s) from None
        raise
    finally:
        conn.set_authorizer(None)
        conn.set_progress_handler(None, 0)
    return columns, rows


_SQLITE_ALLOWED = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
    if action not in _SQLITE_ALLOWED:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and arg2 and is_denied("sqlite", arg2):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _run_postgres(raw: Any, sql: str, max_rows: int, timeout_s: float) -> _Rows:
    raw.rollback()
    raw.read_only = True  # every transaction psycopg opens is BEGIN READ ONLY
    with raw.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
        # Wrapped as a derived table, the server itself refuses anything but a query
        # (COPY, SET, DO, stacked or data-modifying statements); prepare=True sends it
        # through the extended protocol, which refuses a second statement as well.
        cursor.execute(_wrapped(sql), prepare=True)
        columns = tuple(d.name for d in cursor.description or ())
        rows = cursor.fetchmany(max_rows + 1) if cursor.description else []
    return columns, rows


def _run_mysql(raw: Any, sql: str, max_rows: int, timeout_s: float) -> _Rows:
    with raw.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        version = str(cursor.fetchone()[0])
        if "mariadb" in version.lower():
            cursor.execute(f"SET SESSION max_statement_time = {timeout_s:.3f}")
        else:
            cursor.execute(f"SET SESSION max_execution_time = {int(timeout_s * 1000)}")
        cursor.execute("START TRANSACTION READ ONLY")
        try:
            # The server parses the statement as a derived table first (LIMIT 0: nothing
            # runs), so it refuses anything but a query: INTO OUTFILE, SET, stacked
            # statements. MariaDB drops ORDER BY inside derived tables, hence two steps.
            cursor.execute(_wrapped(sql) + " LIMIT 0")
        except Exception as exc:
            # Derived tables refuse duplicate column names (SELECT a.id, b.id); such a
            # statement did parse as a subquery, so it is a query.
            if not (exc.args and exc.args[0] == _MYSQL_DUPLICATE_COLUMN):
                raise
        cursor.execute(sql)
        columns = tuple(d[0] for d in cursor.description or ())
        rows = list(cursor.fetchmany(max_rows + 1)) if cursor.description else []
    return columns, rows


_MYSQL_DUPLICATE_COLUMN = 1060


def _wrapped(sql: str) -> str:
    return f"SELECT * FROM (\n{sql}\n) AS _chat2sql_preview"


_RUNNERS: dict[Dialect, Callable[[Any, str, int, float], _Rows]] = {
    "sqlite": _run_sqlite,
    "postgres": _run_postgres,
    "mysql": _run_mysql,
}


def _password(url: str) -> str:
    try:
        return make_url(url).password or ""
    except ArgumentError:
        return ""


def _rollback_quietly(raw: Any) -> None:
    # The connection is discarded afterwards (NullPool), so a failed rollback is harmless.
    with contextlib.suppress(Exception):
        raw.rollback()


def _is_timeout(exc: BaseException) -> bool:
    text = str(exc).lower()
    sqlstate = getattr(exc, "sqlstate", None)
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return (
        sqlstate == "57014"  # PostgreSQL query_canceled (statement_timeout)
        or code in (3024, 1969)  # MySQL max_execution_time, MariaDB max_statement_time
        or "statement timeout" in text
        or "maximum statement execution time exceeded" in text
    )


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line[:300]


def _json_value(value: Any) -> JsonValue:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return str(value)
