"""Run guard-accepted SQL on a connection that is read-only at the database level too.

Two layers: the guard refuses anything that is not one read-only statement, and the
connection could not write even if it let one through:

- SQLite: a child process (killed at the deadline, address space capped) opens the file
  ``mode=ro`` with ``PRAGMA query_only``, an authorizer that allows only reads and only
  allowlisted functions, SQLite's own length limit, and a progress handler;
- PostgreSQL: ``default_transaction_read_only`` plus ``BEGIN READ ONLY``, a local
  ``statement_timeout``, the statement wrapped as a derived table (so the server's own
  parser refuses anything that is not a query) with an outer LIMIT, through the extended
  protocol, always rolled back;
- MySQL/MariaDB: ``SET SESSION TRANSACTION READ ONLY`` plus ``START TRANSACTION READ
  ONLY``, ``max_execution_time`` (MySQL) or ``max_statement_time`` (MariaDB), one
  statement (no multi-statements flag) that the server first accepts as a derived
  table, read unbuffered, always rolled back.

On the two servers a watchdog keeps the deadline from the client side (see ReadOnlyRunner).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pymysql.cursors
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from chat2sql.errors import (
    Chat2SQLError,
    DatabaseUnreachable,
    PreviewError,
    PreviewFailed,
    PreviewTimeout,
    PreviewTooLarge,
)
from chat2sql.messages import user_message
from chat2sql.redact import redact
from schemas import guard
from schemas.connect import readonly_engine, sqlite_path
from schemas.dialects import Dialect, dialect_for_backend
from schemas.guard import functions
from schemas.model import DatabaseSchema

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 50
DEFAULT_TIMEOUT_S = 5.0

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
    sql: str,
    schema: DatabaseSchema,
    runner: QueryRunner,
    *,
    max_rows: int,
    timeout_s: float,
    allowed_functions: Sequence[str] = (),
) -> dict[str, Any]:
    """Guard, then preview: the JSON object the CLI prints and the bot shows.

    The statement the user sees is capped at ``max_rows``; the one that runs asks for
    one row more, so that ``truncated`` tells whether rows were left out.
    """
    shown = guard.check(sql, schema, max_rows=max_rows, allowed_functions=allowed_functions)
    if not shown.ok or shown.normalized is None:
        return shown.to_json()
    probe = guard.check(sql, schema, max_rows=max_rows + 1, allowed_functions=allowed_functions).raise_for_rejection()
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
    """Runs one statement at a time on a read-only connection to a registered database.

    Deadlines are kept by the client, whatever the engine does: SQLite runs in a child
    process that is killed at the deadline; on PostgreSQL and MySQL/MariaDB a watchdog
    cancels the statement (``cancel_safe()``, ``KILL QUERY``) and, if the server is stuck in
    one operation that no cancel interrupts, cuts the connection. Rows are capped in number,
    per value and in total bytes."""

    def __init__(
        self,
        *,
        url: str,
        secrets: tuple[str, ...] = (),
        allowed_functions: tuple[str, ...] = (),
        limits: PreviewLimits | None = None,
    ) -> None:
        self._url = url
        self._secrets = (*secrets, _password(url))
        self._functions = tuple(f.lower() for f in allowed_functions)
        self._limits = limits or PreviewLimits()
        self._engine: Engine | None = None
        self._engine_timeout: float | None = None

    def run(self, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS, timeout_s: float = DEFAULT_TIMEOUT_S) -> PreviewResult:
        started = time.perf_counter()
        try:
            engine = self._engine_for(timeout_s)
        except (SQLAlchemyError, Chat2SQLError) as exc:
            log.warning("preview connection failed", extra={"fields": {"error": type(exc).__name__}})
            raise DatabaseUnreachable() from None
        dialect = dialect_for_backend(engine.dialect.name)
        try:
            over_budget = False
            if dialect == "sqlite":
                (columns, rows), over_budget = self._run_sqlite(sql, max_rows, timeout_s, started)
            else:
                columns, rows = self._run_watched(engine, dialect, sql, max_rows, timeout_s, started)
        except PreviewError:
            raise
        except Exception as exc:
            if _is_timeout(exc):
                raise PreviewTimeout(timeout_s, time.perf_counter() - started) from None
            raise PreviewFailed(_first_line(redact(str(exc), *self._secrets))) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        shown, truncated = _capped(rows, max_rows, self._limits)
        return PreviewResult(
            columns=columns, rows=shown, truncated=truncated or over_budget, elapsed_ms=round(elapsed_ms, 2)
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

    def _run_sqlite(self, sql: str, max_rows: int, timeout_s: float, started: float) -> tuple[_Rows, bool]:
        """The rows, and whether the child stopped reading at the byte budget."""
        limits = self._limits
        job = {
            "path": str(sqlite_path(make_url(self._url)).resolve()),
            "sql": sql,
            "max_rows": max_rows,
            "timeout_s": timeout_s,
            "functions": sorted(functions.sqlite_runtime_names(self._functions)),
            "memory_bytes": limits.memory_bytes,
            "max_result_bytes": limits.max_result_bytes,
        }
        with subprocess.Popen(
            [sys.executable, "-I", "-S", str(_SQLITE_CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as proc:
            try:
                out, _ = proc.communicate(json.dumps(job).encode(), timeout=timeout_s + _STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise PreviewTimeout(timeout_s, time.perf_counter() - started) from None
        try:
            reply = json.loads(out or b"{}")
        except ValueError:
            reply = {}
        if not reply:  # the memory cap ended it before it could answer
            raise PreviewTooLarge(limits.memory_bytes)
        if reply.get("ok"):
            rows = [tuple(_child_value(v) for v in row) for row in reply["rows"]]
            return (tuple(reply["columns"]), rows), bool(reply.get("over_budget"))
        if reply.get("kind") == "timeout":
            raise PreviewTimeout(timeout_s, time.perf_counter() - started)
        if reply.get("kind") == "memory":
            raise PreviewTooLarge(limits.max_result_bytes)
        raise PreviewFailed(_first_line(redact(str(reply.get("message", "")), *self._secrets)))

    def _run_watched(
        self, engine: Engine, dialect: Dialect, sql: str, max_rows: int, timeout_s: float, started: float
    ) -> _Rows:
        try:
            proxy = engine.raw_connection()
        except (SQLAlchemyError, Chat2SQLError) as exc:
            # Host, port and driver wording stay in the log, never in a chat reply.
            log.warning("preview connection failed", extra={"fields": {"error": type(exc).__name__}})
            raise DatabaseUnreachable() from None
        raw = proxy.dbapi_connection
        assert raw is not None
        job = _Job(lambda: _RUNNERS[dialect](raw, sql, max_rows, timeout_s), close=lambda: _close_quietly(proxy, raw))
        if job.wait(timeout_s + _SERVER_GRACE_S):
            return job.result()
        # The server's own timer did not stop it: cancel from here and, if even that does not
        # end it (one operation that never looks at its interrupts), cut the connection.
        # Whatever it returns now came after the limit: a timeout either way.
        _cancel(engine, dialect, raw)
        if not job.wait(_STOP_GRACE_S / 2):
            _cut(dialect, raw)
            log.warning("preview cut off by the watchdog", extra={"fields": {"dialect": dialect}})
        raise PreviewTimeout(timeout_s, time.perf_counter() - started)


@dataclass(frozen=True, kw_only=True)
class PreviewLimits:
    """What one preview may take: memory of the SQLite child, characters per value, bytes
    in all (and per value, for SQLite's own length limit)."""

    memory_bytes: int = 1_024 * 1024 * 1024
    max_cell_chars: int = 2_000
    max_result_bytes: int = 2_000_000


_SERVER_GRACE_S = 0.2  # the server's own timeout usually answers within this
_STOP_GRACE_S = 0.6  # then cancel, then cut: the caller is free within limit + ~0.6 s
_SQLITE_CHILD = Path(__file__).with_name("sqlite_child.py")

_Rows = tuple[tuple[str, ...], list[tuple[Any, ...]]]


class _Job:
    """Runs the statement on a thread of its own, so that the caller can stop waiting."""

    def __init__(self, work: Callable[[], _Rows], *, close: Callable[[], None]) -> None:
        self._done = threading.Event()
        self._value: _Rows | None = None
        self._error: BaseException | None = None

        def target() -> None:
            try:
                self._value = work()
            except BaseException as exc:  # handed to the waiting caller
                self._error = exc
            finally:
                close()
                self._done.set()

        threading.Thread(target=target, name="chat2sql-preview", daemon=True).start()

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(max(timeout_s, 0.0))

    def result(self) -> _Rows:
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _cancel(engine: Engine, dialect: Dialect, raw: Any) -> None:
    with contextlib.suppress(Exception):
        if dialect == "postgres":
            raw.cancel_safe(timeout=_STOP_GRACE_S / 2)
            return
        killer = engine.raw_connection()
        try:
            cursor = killer.cursor()
            cursor.execute(f"KILL QUERY {int(raw.thread_id())}")
        finally:
            killer.close()


def _cut(dialect: Dialect, raw: Any) -> None:
    """Shut the socket under a connection stuck in the server: the driver's blocked read
    returns at once, and the server drops the statement when it next looks at the client."""
    with contextlib.suppress(Exception):
        if dialect == "postgres":
            with socket.socket(fileno=os.dup(raw.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        else:
            raw._sock.shutdown(socket.SHUT_RDWR)


def _close_quietly(proxy: Any, raw: Any) -> None:
    _rollback_quietly(raw)
    with contextlib.suppress(Exception):
        proxy.close()


def _run_postgres(raw: Any, sql: str, max_rows: int, timeout_s: float) -> _Rows:
    raw.rollback()
    raw.read_only = True  # every transaction psycopg opens is BEGIN READ ONLY
    with raw.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
        # Wrapped as a derived table, the server itself refuses anything but a query
        # (COPY, SET, DO, stacked or data-modifying statements); prepare=True sends it
        # through the extended protocol, which refuses a second statement as well. The
        # outer LIMIT caps what the server sends, whatever the query says (WITH TIES).
        cursor.execute(_wrapped(sql) + f" LIMIT {max_rows + 1}", prepare=True)
        columns = tuple(d.name for d in cursor.description or ())
        rows = cursor.fetchmany(max_rows + 1) if cursor.description else []
    return columns, rows


def _run_mysql(raw: Any, sql: str, max_rows: int, timeout_s: float) -> _Rows:
    # Any account may read server variables (@@datadir, @@hostname), and MySQL runs the
    # inside of /*! … */: no grant can stop either, so the runner refuses them itself.
    if _MYSQL_SERVER_STATE.search(_without_strings(sql)):
        raise PreviewFailed("server variables and executable comments are not allowed in a preview")
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
    # Unbuffered: only the rows a preview shows cross the network, whatever the query says.
    # The connection is discarded afterwards, so a longer result is cut, never read.
    cursor = raw.cursor(pymysql.cursors.SSCursor)
    cursor.execute(sql)
    columns = tuple(d[0] for d in cursor.description or ())
    rows = list(cursor.fetchmany(max_rows + 1)) if cursor.description else []
    if len(rows) > max_rows:
        _cut("mysql", raw)
    return columns, rows


_MYSQL_DUPLICATE_COLUMN = 1060
_MYSQL_SERVER_STATE = re.compile(r"@@|/\*\s*M?!")
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|''|\\.)*'|\"(?:[^\"\\]|\"\"|\\.)*\"")


def _without_strings(sql: str) -> str:
    return _STRING_LITERAL.sub("''", sql)


def _wrapped(sql: str) -> str:
    return f"SELECT * FROM (\n{sql}\n) AS _chat2sql_preview"


_RUNNERS: dict[Dialect, Callable[[Any, str, int, float], _Rows]] = {
    "postgres": _run_postgres,
    "mysql": _run_mysql,
}


def _capped(
    rows: list[tuple[Any, ...]], max_rows: int, limits: PreviewLimits
) -> tuple[tuple[tuple[JsonValue, ...], ...], bool]:
    """At most ``max_rows`` rows, each text value cut at ``max_cell_chars``, and no more rows
    than fit in ``max_result_bytes``; the flag says whether anything was left out."""
    shown: list[tuple[JsonValue, ...]] = []
    total = 0
    truncated = len(rows) > max_rows
    for row in rows[:max_rows]:
        values: list[JsonValue] = []
        for raw_value in row:
            value = _json_value(raw_value)
            if isinstance(value, str) and len(value) > limits.max_cell_chars:
                value, truncated = value[: limits.max_cell_chars] + "…", True
            total += len(value) if isinstance(value, str) else 8
            values.append(value)
        if total > limits.max_result_bytes:
            return tuple(shown), True
        shown.append(tuple(values))
    return tuple(shown), truncated


def _child_value(value: Any) -> Any:
    if isinstance(value, dict) and "bytes" in value:
        return bytes(int(value["bytes"]))  # shown as "<n bytes>", as a driver's bytes are
    return value


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
