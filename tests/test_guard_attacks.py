"""Issue 13's attack classes against each layer on its own, on the real engines.

The reject corpora (``reject_<dialect>.sql``) prove the guard refuses each class; here:

- comments and hints: what runs is the hint-free query and nothing else (``neutralized_*.sql``);
- with the guard bypassed, the corpus returns nothing secret through the read-only runner
  (file contents, password hashes, server paths, another session's SQL);
- PostgreSQL index maintenance run from a SELECT changes nothing;
- one operation that no server timer interrupts is given up at the limit on every engine while
  it still runs (on the server, or in the SQLite child, which is killed), the reply saying how
  long it really ran, while other previews still answer;
- rows are capped in number (``WITH TIES``), per value and in bytes;
- an admin's addition to the allowlist admits a function, never a denied one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from chat2sql.errors import PreviewError, PreviewTimeout, PreviewTooLarge
from chat2sql.messages import user_message
from schemas import guard, preview
from schemas.introspect import introspect_url
from schemas.preview import PreviewLimits, ReadOnlyRunner
from tests.support.corpus import DIALECTS, GUARD_FIXTURES, reject_corpus
from tests.support.databases import PG_ADMIN, my_admin

URL_FIXTURE = {"sqlite": "sqlite_url", "postgres": "pg_url", "mysql": "my_url"}
OTHER_SESSION_MARKER = "c2s_other_session_7f3a"


def _neutralized(dialect: str) -> list[tuple[str, str]]:
    pairs = []
    for raw in (GUARD_FIXTURES / f"neutralized_{dialect}.sql").read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            expected, _, sql = raw.partition("\t")
            pairs.append((expected, sql))
    return pairs


def _secrets() -> list[re.Pattern[str]]:
    hostname = Path("/etc/hostname").read_text().strip()
    with my_admin() as admin, admin.cursor() as cur:  # the accounts' real password hashes
        cur.execute("SELECT DISTINCT authentication_string FROM mysql.user WHERE authentication_string <> ''")
        hashes = [re.escape(str(row[0])) for row in cur.fetchall()]
    return [
        re.compile(r"root:x?:0:0"),  # /etc/passwd
        re.compile(rf"^{re.escape(hostname)}\s*$", re.M),  # /etc/hostname, as a whole value
        re.compile(r"SCRAM-SHA-256\$|md5[0-9a-f]{32}"),  # PostgreSQL password hashes
        *(re.compile(h) for h in hashes),
        re.compile(r"/var/lib/(postgresql|mysql)|/etc/postgresql"),  # server paths
        re.compile(OTHER_SESSION_MARKER),
    ]


@contextmanager
def _other_session(dialect: str) -> Iterator[None]:
    """An admin session on the same server whose last statement carries a marker."""
    if dialect == "postgres":
        with psycopg.connect(**PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"SELECT '{OTHER_SESSION_MARKER}'")
            yield
    elif dialect == "mysql":
        with my_admin() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT '{OTHER_SESSION_MARKER}'")
            yield
    else:
        yield


@pytest.mark.parametrize("dialect", DIALECTS)
def test_comments_and_hints_never_reach_the_engine(dialect: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(URL_FIXTURE[dialect])
    schema = introspect_url(url)
    runner = ReadOnlyRunner(url=url)
    try:
        for expected, sql in _neutralized(dialect):
            checked = guard.check(sql, schema)
            assert checked.ok, (sql, checked.reason)
            assert checked.normalized == expected, sql
            # The text that runs holds no comment a server could read differently.
            code = preview._without_strings(expected)
            assert "/*" not in code and "--" not in code
            assert runner.run(checked.normalized, max_rows=50, timeout_s=2).rows == (
                runner.run(expected, max_rows=50, timeout_s=2).rows
            )
    finally:
        runner.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_bypassed_guard_returns_nothing_secret(dialect: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(URL_FIXTURE[dialect])
    statements = [sql for _rule, sql in reject_corpus(dialect)] + [sql for _x, sql in _neutralized(dialect)]
    secrets = _secrets()
    leaks = []
    runner = ReadOnlyRunner(url=url)
    try:
        with _other_session(dialect):
            for sql in statements:
                try:
                    result = runner.run(sql, max_rows=20, timeout_s=1)
                except PreviewError as err:
                    shown = user_message(err)
                else:
                    shown = "\n".join(str(v) for row in result.rows for v in row)
                leaks += [(sql, p.pattern) for p in secrets if p.search(shown)]
    finally:
        runner.close()
    assert not leaks, "\n".join(map(str, leaks))


def test_index_maintenance_from_a_select_changes_nothing(pg_url: str) -> None:
    name = make_url(pg_url).database
    with psycopg.connect(**{**PG_ADMIN, "dbname": name}, autocommit=True) as admin:
        admin.execute("CREATE TABLE c2s_docs (n int, body tsvector)")
        admin.execute("CREATE INDEX c2s_docs_brin ON c2s_docs USING brin (n)")
        admin.execute("CREATE INDEX c2s_docs_gin ON c2s_docs USING gin (body) WITH (fastupdate = on)")
        admin.execute("INSERT INTO c2s_docs SELECT i, to_tsvector('word' || i) FROM generate_series(1, 20000) i")
        admin.execute("GRANT SELECT ON c2s_docs TO c2s_reader")
        attacks = [
            "SELECT gin_clean_pending_list('c2s_docs_gin')",
            "SELECT brin_summarize_new_values('c2s_docs_brin')",
            "SELECT brin_summarize_range('c2s_docs_brin', 0)",
            "SELECT brin_desummarize_range('c2s_docs_brin', 0)",
        ]
        schema = introspect_url(pg_url)
        runner = ReadOnlyRunner(url=pg_url)
        try:
            for sql in attacks:
                assert guard.check(sql, schema).rule == "allowed_functions"
                with pytest.raises(PreviewError):  # the registered account owns no index
                    runner.run(sql, max_rows=5, timeout_s=2)
        finally:
            runner.close()
        # Nothing was summarized or cleaned: the owner still finds all of it to do.
        assert admin.execute("SELECT gin_clean_pending_list('c2s_docs_gin')").fetchone()[0] > 0  # type: ignore[index]
        assert admin.execute("SELECT brin_summarize_new_values('c2s_docs_brin')").fetchone()[0] > 0  # type: ignore[index]


def test_sequences_large_objects_and_locks_stay_as_they_were(pg_url: str) -> None:
    name = make_url(pg_url).database
    with psycopg.connect(**{**PG_ADMIN, "dbname": name}, autocommit=True) as admin:
        admin.execute("CREATE SEQUENCE c2s_seq")
        admin.execute("SELECT nextval('c2s_seq')")
        admin.execute("GRANT USAGE, SELECT, UPDATE ON SEQUENCE c2s_seq TO c2s_reader")

        def state() -> tuple[Any, ...]:
            seq = admin.execute("SELECT last_value FROM c2s_seq").fetchone()
            objects = admin.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
            locks = admin.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = %s)",
                (name,),
            ).fetchone()
            return (seq, objects, locks)

        before = state()
        schema = introspect_url(pg_url)
        runner = ReadOnlyRunner(url=pg_url)
        attacks = [
            "SELECT nextval('c2s_seq')",
            "SELECT setval('c2s_seq', 1000)",
            "SELECT lo_create(0)",
            "SELECT lo_from_bytea(0, 'x')",
            "SELECT pg_advisory_lock(42)",
            "SELECT pg_advisory_xact_lock(42), pg_sleep(0)",
            "SELECT pg_try_advisory_lock(43)",
        ]
        try:
            for sql in attacks:
                assert not guard.check(sql, schema).ok, sql
                with contextlib.suppress(PreviewError):
                    runner.run(sql, max_rows=5, timeout_s=2)
        finally:
            runner.close()
        assert state() == before


# --- deadlines --------------------------------------------------------------------------------

LIMIT_S = 1.0
SLOW_IN_ONE_STEP = {
    # 9-17 s here with any statement_timeout: strpos never looks at its interrupts
    "postgres": "SELECT strpos(repeat('a', 2000000), 'b' || repeat('a', 6000))",
    # one printf VM step, ~20 s, the progress handler is never called
    "sqlite": "SELECT length(printf('%.*c', 2147483647, 'x'))",
}


def _raised(run: Callable[[], Any]) -> BaseException | None:
    try:
        run()
    except BaseException as exc:
        return exc
    return None


def _children(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Every process the runner starts (the SQLite child), in order, kept to look at later."""
    started: list[subprocess.Popen[bytes]] = []

    class Recorded(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(preview.subprocess, "Popen", Recorded)
    return started


def _still_running(url: str, fragment: str) -> bool:
    """Whether a backend of ``url``'s database is still executing a statement with ``fragment``."""
    with psycopg.connect(**PG_ADMIN, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
            "AND pid <> pg_backend_pid() AND strpos(query, %s) > 0",
            (make_url(url).database, fragment),
        ).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_one_uninterruptible_step_is_given_up_at_the_limit_while_it_runs(
    dialect: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller is freed at the limit, not when the step ends: when the timeout comes back the
    step is still running (PostgreSQL) or its child had to be killed (SQLite); meanwhile another
    preview is answered."""
    url = request.getfixturevalue(URL_FIXTURE[dialect])
    children = _children(monkeypatch)
    slow, fast = ReadOnlyRunner(url=url), ReadOnlyRunner(url=url)

    def given_up() -> tuple[BaseException | None, bool]:
        error = _raised(lambda: slow.run(SLOW_IN_ONE_STEP[dialect], max_rows=5, timeout_s=LIMIT_S))
        return error, dialect == "postgres" and _still_running(url, "strpos(")

    async def both() -> tuple[tuple[BaseException | None, bool], bool]:
        stuck = asyncio.create_task(asyncio.to_thread(given_up))
        await asyncio.sleep(0.2)
        other = await asyncio.to_thread(fast.run, "SELECT name FROM employees ORDER BY id", max_rows=5, timeout_s=5)
        assert other.rows
        meanwhile = not stuck.done()
        return await stuck, meanwhile

    try:
        (error, step_still_running), meanwhile = asyncio.run(both())
    finally:
        slow.close()
        fast.close()
        if dialect == "postgres":
            _wait_for_backends(url)
    assert isinstance(error, PreviewTimeout), error
    assert error.elapsed_s >= LIMIT_S  # it waited its limit, no less
    assert f"{error.elapsed_s:.1f} s in all" in user_message(error)
    assert meanwhile  # another preview was answered while the stuck one was still waited on
    if dialect == "postgres":
        assert step_still_running  # the server was still in the step when the caller was freed
    else:  # the stuck child was killed at the deadline; the other one finished on its own
        assert [c.returncode for c in children] == [-signal.SIGKILL, 0]


def test_mysql_statement_the_server_timer_misses_is_killed(my_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MariaDB's own timer stops every slow statement we found; take it away to prove the
    watchdog's KILL QUERY holds on its own."""
    ended: list[BaseException] = []
    finished = threading.Event()

    def without_server_timer(raw: Any, sql: str, max_rows: int, timeout_s: float) -> Any:
        try:
            with raw.cursor() as cursor:
                cursor.execute(sql)
                return tuple(d[0] for d in cursor.description), list(cursor.fetchall())
        except BaseException as exc:
            ended.append(exc)
            raise
        finally:
            finished.set()

    monkeypatch.setitem(preview._RUNNERS, "mysql", without_server_timer)
    runner = ReadOnlyRunner(url=my_url)
    try:
        error = _raised(lambda: runner.run("SELECT SLEEP(20)", max_rows=5, timeout_s=LIMIT_S))
    finally:
        runner.close()
    assert isinstance(error, PreviewTimeout), error
    assert finished.wait(30), "the statement never ended"  # a guard against a hang
    # The SLEEP did not run its 20 s: the watchdog's KILL QUERY interrupted it.
    assert [type(e) for e in ended] == [pymysql.err.OperationalError], ended
    assert ended[0].args[0] == pymysql.constants.ER.QUERY_INTERRUPTED, ended
    with my_admin() as admin, admin.cursor() as cur:  # and the server stopped it too
        cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(20)'")
        assert cur.fetchone()[0] == 0


def _wait_for_backends(url: str) -> None:
    """The cut-off backend finishes its one step on its own; let it, before the database goes."""
    name = make_url(url).database
    with psycopg.connect(**PG_ADMIN, autocommit=True) as admin:
        for _ in range(60):
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            ).fetchone()
            if not row or row[0] == 0:
                return
            time.sleep(0.5)


def test_sqlite_memory_stays_in_the_child(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    children = _children(monkeypatch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner = ReadOnlyRunner(url=sqlite_url, limits=PreviewLimits(memory_bytes=256 * 1024 * 1024))
    huge = (
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 3000000) "
        "SELECT length(group_concat(printf('%0100d', x))) FROM r"
    )
    error = _raised(lambda: runner.run(huge, max_rows=5, timeout_s=5))
    assert isinstance(error, PreviewTooLarge | PreviewTimeout), error
    # the child ended (at its memory cap, or killed at the deadline) before the runner answered
    assert [c.returncode is not None for c in children] == [True]
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50 * 1024


# --- result caps ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_with_ties_and_percent_are_capped(dialect: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(URL_FIXTURE[dialect])
    schema = introspect_url(url)
    runner = ReadOnlyRunner(url=url)
    ties = {
        "postgres": "SELECT 1 AS one FROM generate_series(1, 100000) ORDER BY 1 FETCH FIRST 1 ROWS WITH TIES",
        "mysql": "SELECT 1 AS one FROM employees a, employees b, employees c ORDER BY 1",
        "sqlite": "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 100000) SELECT 1 FROM r",
    }[dialect]
    try:
        bypassed = runner.run(ties, max_rows=3, timeout_s=5)
        assert len(bypassed.rows) == 3 and bypassed.truncated
        if dialect == "postgres":
            checked = guard.check(
                "SELECT name FROM employees ORDER BY department_id FETCH FIRST 1 ROWS WITH TIES", schema
            )
            assert checked.ok and checked.normalized and "TIES" not in checked.normalized
            assert "ONLY" in checked.normalized and checked.warnings
            percent = guard.check("SELECT name FROM employees FETCH FIRST 50 PERCENT ROWS ONLY", schema)
            assert percent.ok and percent.normalized and "PERCENT" not in percent.normalized
    finally:
        runner.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_values_and_results_are_capped_in_size(dialect: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(URL_FIXTURE[dialect])
    runner = ReadOnlyRunner(url=url, limits=PreviewLimits(max_cell_chars=100, max_result_bytes=1_000))
    concat = (
        "CONCAT(name, REPEAT('x', 500))"
        if dialect == "mysql"
        else "name || " + ("repeat('x', 500)" if dialect == "postgres" else "printf('%500s', 'x')")
    )
    try:
        result = runner.run(f"SELECT {concat} AS long_text FROM employees ORDER BY id", max_rows=50, timeout_s=5)
    finally:
        runner.close()
    assert result.truncated
    assert result.rows and all(len(str(row[0])) <= 101 for row in result.rows)
    assert sum(len(str(row[0])) for row in result.rows) <= 1_000


# --- an admin's own functions -------------------------------------------------------------------


def test_admin_allowed_functions_extend_the_allowlist_only(tmp_path: Path) -> None:
    path = tmp_path / "udf.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INT)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
    schema = introspect_url(f"sqlite:///{path}")
    assert guard.check("SELECT fiscal_quarter(x) FROM t", schema).rule == "allowed_functions"
    assert guard.check("SELECT fiscal_quarter(x) FROM t", schema, allowed_functions=["Fiscal_Quarter"]).ok
    # never a denied one, and a schema-qualified function only by its qualified name
    assert guard.check("SELECT load_extension('x') FROM t", schema, allowed_functions=["load_extension"]).rule == (
        "no_denied_functions"
    )
    pg_like = guard.check("SELECT main.f(x) FROM t", schema, allowed_functions=["f"])
    assert not pg_like.ok and pg_like.rule == "allowed_functions"
    assert guard.check("SELECT main.f(x) FROM t", schema, allowed_functions=["main.f"]).ok
    # and the SQLite child's authorizer lets the admitted function through, nothing else
    runner = ReadOnlyRunner(url=f"sqlite:///{path}", allowed_functions=("sqlite_version",))
    try:
        assert runner.run("SELECT sqlite_version()", max_rows=1, timeout_s=2).rows
    finally:
        runner.close()
    with pytest.raises(PreviewError):
        ReadOnlyRunner(url=f"sqlite:///{path}").run("SELECT sqlite_version()", max_rows=1, timeout_s=2)
