"""Single rules of the guard, each with its own small case."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from schemas import guard
from schemas.guard.denylist import DENYLIST, is_denied
from schemas.model import Column, DatabaseSchema, Table
from schemas.preview import ReadOnlyRunner


def _schema(dialect: str, ns: str | None = None) -> DatabaseSchema:
    return DatabaseSchema(
        dialect=dialect,  # type: ignore[arg-type]
        default_namespace=ns,
        tables=(
            Table(
                namespace=ns,
                name="orders",
                columns=(
                    Column(name="id", type="INT"),
                    Column(name="created_at", type="TIMESTAMP"),
                    Column(name="note", type="TEXT"),
                ),
            ),
            Table(namespace=ns, name="Mixed Case", columns=(Column(name="Total", type="INT"),)),
        ),
    )


SQLITE = _schema("sqlite")
PG = _schema("postgres", "public")
MY = _schema("mysql", "shop")


def test_limit_added_capped_and_kept() -> None:
    assert guard.check("select id from orders", SQLITE, max_rows=10).normalized == "SELECT id FROM orders LIMIT 10"
    assert (
        guard.check("select id from orders limit 500", SQLITE, max_rows=10).normalized
        == "SELECT id FROM orders LIMIT 10"
    )
    assert (
        guard.check("select id from orders limit 3", SQLITE, max_rows=10).normalized == "SELECT id FROM orders LIMIT 3"
    )
    union = guard.check("select id from orders union select id from orders", SQLITE, max_rows=7)
    assert union.normalized is not None and union.normalized.endswith("LIMIT 7")


def test_string_literals_survive_byte_for_byte() -> None:
    sql = "select id from orders where note = 'Zoë  and   Ωmega\ttab'"
    result = guard.check(sql, SQLITE)
    assert result.ok and "'Zoë  and   Ωmega\ttab'" in (result.normalized or "")


@pytest.mark.parametrize(
    ("schema", "sql", "ok"),
    [
        (PG, 'select "Total" from "Mixed Case"', True),
        (PG, 'select total from "Mixed Case"', False),  # PostgreSQL folds unquoted names
        (PG, "select ID from ORDERS", True),
        (PG, 'select "ID" from orders', False),
        (SQLITE, 'select total from "mixed case"', True),  # SQLite matches case-insensitively
        (MY, "select TOTAL from `Mixed Case`", True),  # MySQL columns: case-insensitive
        (MY, "select total from `mixed case`", False),  # MySQL tables on Linux: exact
        (PG, "select id from public.orders", True),
        (PG, "select id from other.orders", False),
        (PG, "select id from db.public.orders", False),
    ],
)
def test_identifiers_match_like_the_engine(schema: DatabaseSchema, sql: str, ok: bool) -> None:
    assert guard.check(sql, schema).ok is ok


def test_cte_names_and_aliases_are_not_tables() -> None:
    sql = "with recent as (select id, created_at from orders) select r.id from recent r join orders o on o.id = r.id"
    assert guard.check(sql, PG).ok


def test_unknown_table_reason_suggests_a_name() -> None:
    result = guard.check("select id from order", PG)
    assert result.rule in ("known_tables", "single_statement")
    result = guard.check("select id from ordrs", PG)
    assert result.rule == "known_tables" and "orders" in (result.reason or "")


def test_rejection_names_rule_and_raises() -> None:
    result = guard.check("update orders set id = 1", PG)
    assert (result.ok, result.rule) == (False, "read_only")
    with pytest.raises(Exception) as info:
        result.raise_for_rejection()
    assert getattr(info.value, "rule", None) == "read_only"


def test_mysql_date_arithmetic_runs_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table orders (id int, created_at timestamp, note text)")
        conn.execute("insert into orders values (1, datetime('now', '-3 days'), 'a'), (2, '2001-01-01', 'b')")
    sql = "SELECT id FROM orders WHERE created_at >= DATE_SUB(NOW(), INTERVAL 1 MONTH)"
    result = guard.check(sql, SQLITE)
    assert result.ok, result.reason
    assert "DATETIME('now', '-1 months')" in (result.normalized or "")
    rows = ReadOnlyRunner(url=f"sqlite:///{path}").run(result.normalized or "").rows
    assert rows == ((1,),)


def test_mysql_date_arithmetic_runs_on_postgres(pg_url: str) -> None:
    schema = DatabaseSchema(
        dialect="postgres",
        default_namespace="public",
        tables=(
            Table(
                namespace="public",
                name="employees",
                columns=(Column(name="id", type="INT"), Column(name="hired_on", type="DATE")),
            ),
        ),
    )
    result = guard.check(
        "SELECT id FROM employees WHERE hired_on >= DATE_SUB(NOW(), INTERVAL 2 YEAR) ORDER BY id", schema
    )
    assert result.ok, result.reason
    runner = ReadOnlyRunner(url=pg_url)
    expected = (
        psycopg.connect(pg_url.replace("postgresql://", "postgresql://", 1))
        .execute("SELECT id FROM employees WHERE hired_on >= now() - interval '2 years' ORDER BY id")
        .fetchall()
    )
    assert [r[0] for r in runner.run(result.normalized or "").rows] == [r[0] for r in expected]


def test_other_dialect_syntax_is_rewritten_with_a_warning() -> None:
    result = guard.check("SELECT `id` FROM orders", PG)
    assert result.ok and result.warnings and "mysql" in result.warnings[0]
    assert result.normalized == 'SELECT "id" FROM orders LIMIT 50'


def test_denylist_patterns() -> None:
    assert is_denied("postgres", "pg_sleep_for") and is_denied("postgres", "LO_IMPORT")
    assert is_denied("mysql", "SLEEP") and is_denied("sqlite", "load_extension")
    assert not any(
        is_denied(d, f) for d in DENYLIST for f in ("count", "sum", "lower", "date_trunc", "strftime", "coalesce")
    )


@pytest.mark.parametrize("sql", ["", "   ", "-- just a comment", "/* nothing */", ";"])
def test_no_statement(sql: str) -> None:
    result = guard.check(sql, SQLITE)
    assert (result.ok, result.rule) == (False, "single_statement")


def test_fetch_first_is_kept_or_capped() -> None:
    kept = guard.check("select id from orders order by id fetch first 2 rows only", PG, max_rows=10)
    assert kept.normalized == "SELECT id FROM orders ORDER BY id FETCH FIRST 2 ROWS ONLY"
    capped = guard.check("select id from orders order by id fetch first 500 rows only", PG, max_rows=10)
    assert capped.normalized == "SELECT id FROM orders ORDER BY id FETCH FIRST 10 ROWS ONLY"


def test_mysql_output_runs_on_mariadb_too() -> None:
    result = guard.check("select id from orders where note regexp '^a' and note not rlike 'b$'", MY)
    assert result.normalized == "SELECT id FROM orders WHERE note REGEXP '^a' AND NOT note REGEXP 'b$' LIMIT 50"


def test_comments_never_reach_the_engine() -> None:
    result = guard.check("SELECT id FROM orders; -- list staff; DROP TABLE orders", SQLITE)
    assert result.normalized == "SELECT id FROM orders LIMIT 50"
    commented = guard.check("select id /* note */ from orders", SQLITE)
    assert commented.normalized == "SELECT id FROM orders LIMIT 50"


def test_mysql_executable_comments_are_refused() -> None:
    for sql in ("SELECT 1 /*!, SLEEP(1) */", "select id from orders /*M! , load_file('x') */"):
        assert guard.check(sql, MY).rule == "no_executable_comments"
    assert guard.check("select id from orders /* plain */", MY).ok


def test_sqlite_only_main_database() -> None:
    assert guard.check("select id from main.orders", SQLITE).ok
    for ns in ("temp", "other", "attached"):
        assert guard.check(f"select id from {ns}.orders", SQLITE).rule == "known_tables"


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("HANDLER orders OPEN", "not HANDLER statements"),
        ("SELECT * INTO OUTFILE '/tmp/x' FROM orders", "SELECT … INTO"),
        ("```sql SELECT * FROM orders ```", "not an SQL query"),
    ],
)
def test_unparseable_statements_get_specific_reasons(sql: str, reason: str) -> None:
    result = guard.check(sql, MY)
    assert result.rule == "read_only" and reason in (result.reason or "")


def test_stacked_statements_that_do_not_parse() -> None:
    result = guard.check("SELECT 1; LOAD DATA INFILE '/tmp/x' INTO TABLE orders", MY)
    assert result.rule in ("single_statement", "read_only") and not result.ok


def test_column_on_the_wrong_alias_is_requalified() -> None:
    schema = DatabaseSchema(
        dialect="sqlite",
        tables=(
            Table(name="orders", columns=(Column(name="order_id", type="INT"), Column(name="order_date", type="TEXT"))),
            Table(
                name="order_items", columns=(Column(name="order_id", type="INT"), Column(name="revenue", type="REAL"))
            ),
        ),
    )
    result = guard.check(
        "SELECT SUM(o.revenue) FROM order_items oi JOIN orders o ON oi.order_id = o.order_id WHERE o.order_date > '2026'",
        schema,
    )
    assert result.ok and "SUM(oi.revenue)" in (result.normalized or "")
    assert result.warnings == ("o.revenue read as oi.revenue",)
    ambiguous = DatabaseSchema(
        dialect="sqlite",
        tables=(
            *schema.tables,
            Table(name="refunds", columns=(Column(name="revenue", type="REAL"), Column(name="order_id", type="INT"))),
        ),
    )
    two = guard.check("SELECT o.revenue FROM orders o JOIN order_items oi ON 1=1 JOIN refunds r ON 1=1", ambiguous)
    assert two.rule == "known_columns"


@pytest.mark.parametrize(
    "sql",
    [
        "WITH pg_settings AS (SELECT * FROM pg_settings) SELECT * FROM pg_settings",
        "SELECT * FROM pg_roles, (WITH pg_roles AS (SELECT 1 AS a) SELECT a FROM pg_roles) t",
        "WITH orders AS (SELECT * FROM pg_stat_activity) SELECT * FROM orders",
    ],
)
def test_cte_names_never_hide_real_tables(sql: str) -> None:
    assert guard.check(sql, PG).rule == "known_tables"


def test_ctes_in_scope_still_work() -> None:
    assert guard.check("WITH x AS (SELECT id FROM orders), y AS (SELECT id FROM x) SELECT id FROM y", PG).ok
    assert guard.check(
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3) SELECT n FROM c", PG
    ).ok
    assert guard.check("SELECT * FROM (WITH x AS (SELECT id FROM orders) SELECT id FROM x) t", PG).ok
