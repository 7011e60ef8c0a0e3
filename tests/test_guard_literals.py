"""Double-quoted names that name no column: read as strings where the engine does, and the
unknown-column message that names the table an alias stands for."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from bench.gold_check import check_gold, render
from schemas import guard
from schemas.introspect import introspect_url
from schemas.model import Column, DatabaseSchema, Table
from schemas.preview import ReadOnlyRunner


def _schema(dialect: str, ns: str | None = None) -> DatabaseSchema:
    """Spider's pets_1, in the case each engine keeps (PostgreSQL folds unquoted names to lower)."""
    fold = str.lower if dialect == "postgres" else str

    def table(name: str, *columns: str) -> Table:
        return Table(namespace=ns, name=fold(name), columns=tuple(Column(name=fold(c), type="TEXT") for c in columns))

    return DatabaseSchema(
        dialect=dialect,  # type: ignore[arg-type]
        default_namespace=ns,
        tables=(
            table("Student", "StuID", "Fname", "Home Town"),
            table("Pets", "PetID", "PetType", "weight"),
            table("Has_Pet", "StuID", "PetID"),
        ),
    )


SQLITE, PG, MY = _schema("sqlite"), _schema("postgres", "public"), _schema("mysql", "pets")
ALL = [SQLITE, PG, MY]


def _ok(sql: str, schema: DatabaseSchema) -> guard.GuardResult:
    result = guard.check(sql, schema)
    assert result.ok, result.reason
    assert result.normalized is not None
    again = guard.check(result.normalized, schema)
    assert again.normalized == result.normalized  # the emitted SQL is a fixed point
    return result


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.dialect)
def test_unknown_double_quoted_value_becomes_a_string_with_a_warning(schema: DatabaseSchema) -> None:
    result = _ok('SELECT Fname FROM Student WHERE Fname = "Linda"', schema)
    assert result.normalized == "SELECT Fname FROM Student WHERE Fname = 'Linda' LIMIT 50"
    assert result.warnings == ("\"Linda\" read as the string 'Linda'",)


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.dialect)
def test_comparisons_in_lists_between_and_like(schema: DatabaseSchema) -> None:
    sql = 'SELECT PetID FROM Pets WHERE PetType IN ("cat", "dog") AND weight BETWEEN "1" AND "9" AND PetType LIKE "%o%"'
    result = _ok(sql, schema)
    assert result.normalized == (
        "SELECT PetID FROM Pets WHERE PetType IN ('cat', 'dog') AND weight BETWEEN '1' AND '9' "
        "AND PetType LIKE '%o%' LIMIT 50"
    )
    assert len(result.warnings) == 5


@pytest.mark.parametrize("schema", [SQLITE, PG], ids=lambda s: s.dialect)
def test_a_real_column_in_double_quotes_stays_a_column(schema: DatabaseSchema) -> None:
    result = _ok('SELECT "fname" FROM Student WHERE "home town" = "Paris"', schema)
    assert result.normalized == 'SELECT "fname" FROM Student WHERE "home town" = \'Paris\' LIMIT 50'
    assert result.warnings == ("\"Paris\" read as the string 'Paris'",)


def test_mysql_reads_every_double_quoted_name_as_a_string_like_the_server() -> None:
    result = _ok('SELECT "Fname" FROM Student', MY)
    assert result.normalized == "SELECT 'Fname' FROM Student LIMIT 50"
    assert result.warnings == ("\"Fname\" read as the string 'Fname'",)


@pytest.mark.parametrize(
    ("schema", "written", "literal"),
    [
        (SQLITE, '"O\'Brien"', "'O''Brien'"),
        (PG, '"O\'Brien"', "'O''Brien'"),
        (SQLITE, '"say ""hi"""', "'say \"hi\"'"),
        (PG, '"a\\b"', "'a\\b'"),
        (MY, '"a\\\\b"', "'a\\\\b'"),  # MySQL: a backslash escapes, in "…" and in '…'
    ],
)
def test_quotes_and_backslashes_are_escaped_for_the_engine(schema: DatabaseSchema, written: str, literal: str) -> None:
    result = _ok(f"SELECT PetID FROM Pets WHERE PetType = {written}", schema)
    assert result.normalized == f"SELECT PetID FROM Pets WHERE PetType = {literal} LIMIT 50"


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.dialect)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT Fname FROM Student WHERE nme = 'Linda'",  # unquoted: never a string
        "SELECT Fname FROM Student WHERE Fname = Linda",
        "SELECT Fname FROM Student s WHERE s.fname = 'x' AND s.\"Linda\" = 1",  # qualified: a column
    ],
)
def test_unquoted_or_qualified_unknown_names_are_still_rejected(schema: DatabaseSchema, sql: str) -> None:
    assert guard.check(sql, schema).rule == "known_columns"


@pytest.mark.parametrize("schema", [SQLITE, PG], ids=lambda s: s.dialect)
@pytest.mark.parametrize(
    "sql",
    [
        'SELECT "Linda" FROM Student',  # a whole output column: a mistyped column, not a value
        'SELECT Fname FROM Student ORDER BY "Age"',
        'SELECT COUNT(*) FROM Student GROUP BY "Major"',
        'SELECT Fname FROM Student WHERE "HomeTown" = Fname',  # "home town" up to case and spacing
        'SELECT Fname FROM Student WHERE "Age" > 20',  # compared with no column at all
        'SELECT Fname FROM Student WHERE "Linda" = "Fname2"',
        "SELECT Fname FROM Student WHERE `Linda` = Fname",  # backticks are never strings
    ],
)
def test_likely_mistyped_columns_stay_columns_and_are_rejected(schema: DatabaseSchema, sql: str) -> None:
    assert guard.check(sql, schema).rule == "known_columns"


def test_sqlite_brackets_are_never_strings() -> None:
    assert guard.check("SELECT Fname FROM Student WHERE Fname = [Linda]", SQLITE).rule == "known_columns"


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT UPPER("linda") FROM Student',
        'SELECT "Linda" AS name FROM Student',
        'SELECT CASE WHEN Fname = \'x\' THEN "yes" ELSE "no" END FROM Student',
        'SELECT COALESCE("nick", Fname) FROM Student WHERE "Fname" IS NOT NULL',
    ],
)
def test_postgres_outside_comparisons_with_a_column_still_rejected(sql: str) -> None:
    assert guard.check(sql, PG).rule == "known_columns"
    assert guard.check(sql, SQLITE).ok  # SQLite reads each of these "…" as a string


def test_aliases_and_cte_columns_are_not_strings() -> None:
    alias = _ok('SELECT Fname AS "first" FROM Student WHERE "first" = "Ann" ORDER BY "first"', SQLITE)
    assert alias.normalized == (
        'SELECT Fname AS "first" FROM Student WHERE "first" = \'Ann\' ORDER BY "first" LIMIT 50'
    )
    for schema in (SQLITE, PG):
        cte = _ok('WITH s(who) AS (SELECT Fname FROM Student) SELECT "who" FROM s WHERE "who" = "Ann"', schema)
        assert cte.normalized == (
            'WITH s(who) AS (SELECT Fname FROM Student) SELECT "who" FROM s WHERE "who" = \'Ann\' LIMIT 50'
        )
    derived = _ok('SELECT "PetType" FROM (SELECT * FROM Pets) p WHERE "PetType" = "dog"', SQLITE)
    assert "\"PetType\" = 'dog'" in (derived.normalized or "")


def test_correlated_subqueries_see_the_outer_columns() -> None:
    sql = (
        "SELECT Fname FROM Student s WHERE EXISTS (SELECT 1 FROM Has_Pet h JOIN Pets p ON p.PetID = h.PetID "
        'WHERE h.StuID = s.StuID AND "Fname" <> "Bo" AND p.PetType = "dog")'
    )
    result = _ok(sql, SQLITE)
    assert "\"Fname\" <> 'Bo'" in (result.normalized or "") and "p.PetType = 'dog'" in (result.normalized or "")


def test_the_message_names_the_table_an_alias_stands_for() -> None:
    sql = "SELECT T1.fname FROM Pets AS T1 JOIN Has_Pet AS T2 ON T1.PetID = T2.PetID"
    for schema in (SQLITE, MY):
        result = guard.check(sql, schema)
        assert result.rule == "known_columns"
        assert result.reason == "unknown column 'T1.fname': fname is a column of Student, not of Pets"
    missing = guard.check("SELECT T1.age FROM Pets AS T1", SQLITE)
    assert missing.reason == "unknown column 'T1.age': Pets has no column age"
    bare = guard.check("SELECT fname FROM Pets", SQLITE)
    assert bare.reason == "unknown column 'fname' here; a column named fname exists in Student"
    cte = guard.check("WITH w AS (SELECT PetID FROM Pets) SELECT w.weight FROM w", SQLITE)
    assert cte.reason == "unknown column 'w.weight': w has no column weight"


def test_sqlite_rows_are_the_ones_meant(tmp_path: Path) -> None:
    path = tmp_path / "pets.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table Pets (PetID int, PetType text, weight real)")
        conn.execute("insert into Pets values (1, 'dog', 3), (2, 'cat', 4), (3, 'dog', 9)")
    sql = 'SELECT PetID FROM Pets WHERE PetType = "dog" ORDER BY PetID'
    schema = introspect_url(f"sqlite:///{path}")
    normalized = _ok(sql, schema).normalized or ""
    with sqlite3.connect(path) as conn:
        assert conn.execute(sql).fetchall() == conn.execute(normalized).fetchall() == [(1,), (3,)]


def test_postgres_runs_the_rewritten_literal(pg_url: str) -> None:
    """PostgreSQL itself refuses ``"Ada"`` (no such column); the rewritten query finds Ada."""
    schema = introspect_url(pg_url)
    sql = 'SELECT id, name FROM employees WHERE name = "Ada" OR name IN ("Bo") ORDER BY id'
    result = _ok(sql, schema)
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute(sql)
    runner = ReadOnlyRunner(url=pg_url)
    try:
        assert runner.run(result.normalized or "", max_rows=50, timeout_s=5).rows == ((1, "Ada"), (2, "Bo"))
    finally:
        runner.close()


def test_mariadb_rows_match_the_server_reading(my_url: str) -> None:
    """MariaDB reads "…" as a string in its default mode: the guard's output returns the same rows."""
    schema = introspect_url(my_url)
    sql = 'SELECT id, "name" FROM employees WHERE name IN ("Ada", "Bo") ORDER BY id'
    result = _ok(sql, schema)
    assert result.normalized == "SELECT id, 'name' FROM employees WHERE name IN ('Ada', 'Bo') ORDER BY id LIMIT 50"
    url = make_url(my_url)
    conn = pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or "", database=url.database
    )
    with conn, conn.cursor() as cur:
        cur.execute(sql)
        direct = tuple(tuple(row) for row in cur.fetchall())
    runner = ReadOnlyRunner(url=my_url)
    try:
        rows = runner.run(result.normalized or "", max_rows=50, timeout_s=5).rows
    finally:
        runner.close()
    assert rows == direct == ((1, "name"), (2, "name"))


def test_gold_check_counts_accepted_rejected_and_rows(tmp_path: Path) -> None:
    data = tmp_path / "spider"
    db = data / "database" / "zoo" / "zoo.sqlite"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("create table animal (id int, kind text, name text)")
        conn.execute("insert into animal values (1, 'dog', 'Rex'), (2, 'cat', 'Tom'), (3, 'dog', 'Fido')")
    gold = [
        'SELECT name FROM animal WHERE kind  =  "dog" ORDER BY id',
        "SELECT count(*) FROM animal",
        "SELECT nickname FROM animal",  # a broken "gold" query: the guard must count it
    ]
    (data / "dev.json").write_text(json.dumps([{"db_id": "zoo", "query": q, "question": "?"} for q in gold]))
    before = db.read_bytes()
    [report] = check_gold(data, tmp_path / "work")
    assert (report.name, report.gold, report.accepted, dict(report.rejected)) == ("zoo", 3, 2, {"known_columns": 1})
    assert (report.rows_differ, report.original_fails) == (0, 0)
    assert db.read_bytes() == before  # the data set's own file is never opened for writing
    table = render([report])
    assert "zoo" in table and "known_columns 1" in table


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_a_query_sqlglot_cannot_analyse_is_a_rejection_not_a_crash(dialect: str) -> None:
    schema = DatabaseSchema(
        dialect=dialect,  # type: ignore[arg-type]
        tables=(
            Table(name="singer", columns=(Column(name="name", type="TEXT"), Column(name="id", type="INT"))),
            Table(name="concert", columns=(Column(name="id", type="INT"),)),
        ),
    )
    for sql in (
        "SELECT s.name FROM singer s JOIN concert s ON s.id = s.id",  # one alias, two tables
        "SELECT s.nope FROM singer s JOIN concert s ON 1 = 1",
    ):
        result = guard.check(sql, schema)
        assert not result.ok and result.reason == "the query could not be analysed: Alias already used: s"
