"""The guard against fixture corpora, on the real engines.

- every statement of ``reject_<dialect>.sql`` is refused, by the rule named beside it;
- the same statements run with the guard bypassed on the read-only connection change
  nothing (checksums of every table before and after);
- every query of ``valid_<dialect>.sql`` is accepted and returns, through the preview,
  the rows a direct driver execution returns.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from chat2sql.errors import PreviewError
from schemas import guard
from schemas.introspect import introspect_url
from schemas.model import DatabaseSchema
from schemas.preview import ReadOnlyRunner, _json_value
from tests.support.corpus import DIALECTS, reject_corpus, valid_corpus

URL_FIXTURE = {"sqlite": "sqlite_url", "postgres": "pg_url", "mysql": "my_url"}


def _direct(url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    """Execute through the plain driver, outside everything chat2sql adds."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()

    def run(sql: str) -> list[tuple[Any, ...]]:
        if backend == "sqlite":
            with sqlite3.connect(parsed.database or "") as conn:
                return list(conn.execute(sql).fetchall())
        if backend == "postgresql":
            with psycopg.connect(
                host=parsed.host,
                port=parsed.port,
                user=parsed.username,
                password=parsed.password or None,
                dbname=parsed.database,
            ) as conn:
                return list(conn.execute(sql).fetchall())  # type: ignore[call-overload]
        conn = pymysql.connect(
            host=parsed.host,
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
            database=parsed.database,
            charset="utf8mb4",
        )
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    return run


def _checksum(url: str, schema: DatabaseSchema) -> dict[str, str]:
    run = _direct(url)
    sums = {}
    for table in schema.tables:
        quote = "`" if schema.dialect == "mysql" else '"'
        rows = run(f"SELECT * FROM {quote}{table.name}{quote}")
        sums[table.name] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
    return sums


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reject_corpus(dialect: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(URL_FIXTURE[dialect])
    schema = introspect_url(url)
    corpus = reject_corpus(dialect)
    assert len(corpus) >= 60
    misses = []
    for expected_rule, sql in corpus:
        result = guard.check(sql, schema)
        if result.ok or result.rule != expected_rule:
            misses.append((sql, expected_rule, result.rule, result.reason))
        else:
            assert result.reason and result.reason.strip()
    assert not misses, "\n".join(map(str, misses))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_bypassed_guard_cannot_write(dialect: str, request: pytest.FixtureRequest, tmp_path: Any) -> None:
    url = request.getfixturevalue(URL_FIXTURE[dialect])
    schema = introspect_url(url)
    before = _checksum(url, schema)
    tables_before = sorted(t.qualified_name for t in schema.tables)
    runner = ReadOnlyRunner(url=url)
    ran = 0
    try:
        for _rule, sql in reject_corpus(dialect):
            try:
                runner.run(sql, max_rows=5, timeout_s=1)
            except PreviewError:
                continue
            ran += 1
    finally:
        runner.close()
    after_schema = introspect_url(url)
    assert sorted(t.qualified_name for t in after_schema.tables) == tables_before
    assert _checksum(url, after_schema) == before
    assert ran < len(reject_corpus(dialect))  # the read-only layer itself refused statements


@pytest.mark.parametrize("dialect", DIALECTS)
def test_valid_corpus_matches_direct_execution(dialect: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(URL_FIXTURE[dialect])
    schema = introspect_url(url)
    direct = _direct(url)
    runner = ReadOnlyRunner(url=url)
    corpus = valid_corpus(dialect)
    assert len(corpus) >= 30
    failures = []
    try:
        for sql in corpus:
            checked = guard.check(sql, schema)
            if not checked.ok or checked.normalized is None:
                failures.append((sql, checked.rule, checked.reason))
                continue
            try:
                preview = runner.run(checked.normalized, max_rows=50, timeout_s=5)
            except PreviewError as err:
                failures.append((sql, "preview", repr(err)))
                continue
            expected = [tuple(_json_value(v) for v in row) for row in direct(sql)]
            if list(preview.rows) != expected:
                failures.append((sql, "rows differ", f"{preview.rows!r} != {expected!r}"))
    finally:
        runner.close()
    assert not failures, "\n".join(map(str, failures))
