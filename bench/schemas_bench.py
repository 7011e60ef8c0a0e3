"""Benchmarks for schemas/: introspection, guard throughput, preview overhead.

    .venv/bin/python -m bench.schemas_bench [--quick]

Prints small tables. Figures are wall-clock on a shared machine: compare ratios within
one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pymysql
from sqlalchemy.engine import make_url

from schemas import guard
from schemas.introspect import introspect_url
from schemas.preview import ReadOnlyRunner
from tests.support.corpus import DIALECTS, reject_corpus, valid_corpus
from tests.support.databases import (
    make_sqlite,
    my_create_database,
    my_drop_database,
    pg_create_database,
    pg_drop_database,
    sample_script,
)

TABLES = 300


def _wide_script(n: int) -> str:
    out = []
    for i in range(n):
        ref = f", parent_id INTEGER REFERENCES t{i - 1:03d}(id)" if i else ""
        out.append(
            f"CREATE TABLE t{i:03d} (id INTEGER PRIMARY KEY, label VARCHAR(40), "
            f"status VARCHAR(20), amount NUMERIC(10,2), created_at DATE{ref})"
        )
        out.append(
            f"INSERT INTO t{i:03d} (id, label, status, amount, created_at) VALUES "
            + ", ".join(f"({j}, 'label {j}', 'state{j % 3}', {j}.5, '2026-01-0{1 + j % 9}')" for j in range(20))
        )
    return ";\n".join(out) + ";\n"


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print(_row(header, widths))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(_row(r, widths))


def bench_introspection(repeat: int, folder: Path) -> None:
    script = _wide_script(TABLES)
    rows = []
    sqlite_url = f"sqlite:///{folder / 'wide.db'}"
    with sqlite3.connect(folder / "wide.db") as conn:
        conn.executescript(script)
    pg_name = f"c2s_bench_{uuid.uuid4().hex[:6]}"
    pg_url = pg_create_database(pg_name, script)
    try:
        for engine, url in (("sqlite", sqlite_url), ("postgres", pg_url)):
            times = _timed(lambda url=url: introspect_url(url), repeat)  # type: ignore[misc]
            tables = len(introspect_url(url).tables)
            rows.append([engine, str(tables), f"{statistics.median(times):.0f}", f"{min(times):.0f}"])
    finally:
        pg_drop_database(pg_name)
    _table(
        f"Introspection of a generated {TABLES}-table schema (with sample values), {repeat} runs",
        ["engine", "tables", "median ms", "min ms"],
        rows,
    )


def bench_guard(repeat: int, folder: Path) -> None:
    url = make_sqlite(folder / "sample.db", sample_script("sqlite"))
    schemas = {"sqlite": introspect_url(url)}
    pg_name, my_name = f"c2s_bench_{uuid.uuid4().hex[:6]}", f"c2s_bench_{uuid.uuid4().hex[:6]}"
    schemas["postgres"] = introspect_url(pg_create_database(pg_name, sample_script("postgres")))
    schemas["mysql"] = introspect_url(my_create_database(my_name, sample_script("mysql")))
    pg_drop_database(pg_name)
    my_drop_database(my_name)
    rows = []
    for dialect in DIALECTS:
        corpus = valid_corpus(dialect) + [sql for _, sql in reject_corpus(dialect)]
        per_statement: list[float] = []
        start = time.perf_counter()
        for _ in range(repeat):
            for sql in corpus:
                t0 = time.perf_counter()
                guard.check(sql, schemas[dialect])
                per_statement.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - start
        qs = statistics.quantiles(per_statement, n=100)
        rows.append(
            [
                dialect,
                str(len(corpus)),
                f"{len(per_statement) / elapsed:.0f}",
                f"{qs[49]:.2f}",
                f"{qs[98]:.2f}",
            ]
        )
    _table(
        f"Guard on the mixed fixture corpora (valid + rejected), {repeat} passes",
        ["dialect", "statements", "stmts/s", "p50 ms", "p99 ms"],
        rows,
    )


QUERY = (
    "SELECT d.name, COUNT(*) AS n, AVG(e.salary) AS avg_salary FROM employees e "
    "JOIN departments d ON d.id = e.department_id GROUP BY d.name ORDER BY n DESC, d.name"
)


def _raw(url: str) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], None]]:
    """(fresh connection per query, one reused connection, close) through the plain driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database or ""

        def connect() -> Any:
            return sqlite3.connect(path)
    elif backend == "postgresql":

        def connect() -> Any:
            return psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database)
    else:

        def connect() -> Any:
            return pymysql.connect(host=parsed.host, port=parsed.port or 3306, user="root", database=parsed.database)

    shared = connect()

    def run_on(conn: Any) -> Any:
        cur = conn.cursor()
        cur.execute(QUERY)
        rows = cur.fetchall()
        cur.close()
        return rows

    def fresh() -> Any:
        conn = connect()
        try:
            return run_on(conn)
        finally:
            conn.close()

    def reused() -> Any:
        rows = run_on(shared)
        shared.rollback()  # hold no locks between runs (MySQL metadata locks block DROP)
        return rows

    return fresh, reused, shared.close


def bench_preview(repeat: int, folder: Path) -> None:
    pg_name, my_name = f"c2s_bench_{uuid.uuid4().hex[:6]}", f"c2s_bench_{uuid.uuid4().hex[:6]}"
    urls = {
        "sqlite": make_sqlite(folder / "preview.db", sample_script("sqlite")),
        "postgres": pg_create_database(pg_name, sample_script("postgres")),
        "mysql": my_create_database(my_name, sample_script("mysql")),
    }
    rows: list[list[str]] = []
    try:
        for dialect, url in urls.items():
            schema = introspect_url(url)
            normalized = guard.check(QUERY, schema).raise_for_rejection()
            runner = ReadOnlyRunner(url=url)
            fresh, reused, close = _raw(url)
            reused_ms = statistics.median(_timed(reused, repeat))
            fresh_ms = statistics.median(_timed(fresh, repeat))
            close()
            preview_ms = statistics.median(_timed(lambda r=runner, q=normalized: r.run(q), repeat))  # type: ignore[misc]
            runner.close()
            rows.append(
                [
                    dialect,
                    f"{reused_ms:.2f}",
                    f"{fresh_ms:.2f}",
                    f"{preview_ms:.2f}",
                    f"{preview_ms / fresh_ms:.2f}x",
                ]
            )
    finally:
        pg_drop_database(pg_name)
        my_drop_database(my_name)
    _table(
        f"Preview vs raw driver, same GROUP BY/JOIN query, median of {repeat}",
        ["engine", "raw reused ms", "raw new-conn ms", "preview ms", "preview/new-conn"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_introspection(repeat, folder)
        bench_guard(2 if args.quick else 5, folder)
        bench_preview(20 if args.quick else 100, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
