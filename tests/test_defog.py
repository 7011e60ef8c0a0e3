"""defog-data's seven real PostgreSQL dumps (83 tables) in PostgreSQL and in SQLite copies:
introspection finds every table and column, and guarded queries run on both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas import guard
from schemas.introspect import introspect_url
from schemas.model import DatabaseSchema
from schemas.preview import ReadOnlyRunner, run_checked
from schemas.render import rank_tables
from tests.support.databases import PG_ADMIN, pg_create_database, pg_drop_database
from tests.support.defog import (
    DEFOG_DATABASES,
    column_descriptions,
    dump_columns,
    load_postgres,
    load_sqlite,
    read_dump,
)

Loaded = dict[str, dict[str, tuple[str, DatabaseSchema]]]  # engine -> db -> (url, schema)


@pytest.fixture(scope="module")
def defog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    suffix = uuid.uuid4().hex[:6]
    folder = tmp_path_factory.mktemp("defog")
    loaded: Loaded = {"postgres": {}, "sqlite": {}}
    created = []
    for name in DEFOG_DATABASES:
        db = f"c2s_defog_{name}_{suffix}"
        url = pg_create_database(db)
        created.append(db)
        load_postgres({**PG_ADMIN, "dbname": db}, name)
        loaded["postgres"][name] = (url, introspect_url(url))
        sqlite_url = load_sqlite(folder / f"{name}.db", name)
        loaded["sqlite"][name] = (sqlite_url, introspect_url(sqlite_url))
    yield loaded
    for db in created:
        pg_drop_database(db)


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
def test_every_table_and_column_found(defog: Loaded, engine: str) -> None:
    total = 0
    for name in DEFOG_DATABASES:
        schema = defog[engine][name][1]
        expected = dump_columns(name)
        described = column_descriptions(name)  # the package's metadata (misses a few columns)
        assert {t.name for t in schema.tables} == set(expected) == set(described), name
        for table in schema.tables:
            names = {c.name for c in table.columns}
            assert names == expected[table.name], (name, table.name)
            assert set(described[table.name]) <= names
        total += len(schema.tables)
    assert total == 83


def test_row_counts_agree_through_the_guard(defog: Loaded) -> None:
    """SELECT count(*) on every table, guarded and previewed, on PostgreSQL and SQLite."""
    for name in DEFOG_DATABASES:
        counts: dict[str, dict[str, object]] = {}
        for engine in ("postgres", "sqlite"):
            url, schema = defog[engine][name]
            runner = ReadOnlyRunner(url=url)
            for table in schema.tables:
                out = run_checked(f'SELECT COUNT(*) AS n FROM "{table.name}"', schema, runner, max_rows=5, timeout_s=10)
                assert out["ok"], out
                counts.setdefault(table.name, {})[engine] = out["rows"][0][0]  # type: ignore[index]
            runner.close()
        expected = {copy.table.removeprefix("public."): len(copy.lines) for copy in read_dump(name).copies}
        for table, per_engine in counts.items():
            assert per_engine["postgres"] == per_engine["sqlite"] == expected.get(table, 0), (name, table)


QUESTIONS = [
    (
        "restaurants",
        "SELECT r.name, l.street_name FROM restaurant r JOIN location l ON l.restaurant_id = r.id "
        "WHERE r.city_name = 'San Francisco' AND r.rating > 4 ORDER BY r.name",
    ),
    (
        "geography",
        "SELECT state_name, population FROM state WHERE population > (SELECT AVG(population) FROM state) "
        "ORDER BY population DESC",
    ),
    (
        "yelp",
        "SELECT b.name, COUNT(r.rid) AS reviews FROM business b "
        "LEFT JOIN review r ON r.business_id = b.business_id "
        "GROUP BY b.name ORDER BY reviews DESC, b.name",
    ),
    (
        "academic",
        "SELECT a.name FROM author a WHERE EXISTS (SELECT 1 FROM writes w WHERE w.aid = a.aid) ORDER BY a.name",
    ),
]


@pytest.mark.parametrize(("name", "sql"), QUESTIONS)
def test_analytical_queries_agree(defog: Loaded, name: str, sql: str) -> None:
    rows = {}
    for engine in ("postgres", "sqlite"):
        url, schema = defog[engine][name]
        runner = ReadOnlyRunner(url=url)
        out = run_checked(sql, schema, runner, max_rows=50, timeout_s=10)
        runner.close()
        assert out["ok"], out
        rows[engine] = out["rows"]
    assert rows["postgres"] == rows["sqlite"]


def test_guard_rejects_unknown_names_on_real_schemas(defog: Loaded) -> None:
    schema = defog["postgres"]["restaurants"][1]
    assert guard.check("SELECT name FROM restaurants", schema).rule == "known_tables"
    assert guard.check("SELECT stars FROM restaurant", schema).rule == "known_columns"


def test_ranking_finds_relevant_tables(defog: Loaded) -> None:
    schema = defog["postgres"]["atis"][1]
    order = rank_tables(schema, "which airlines fly from Boston to Denver?")
    assert "airline" in order[:5] or "public.airline" in order[:5]


def test_defog_sqlite_copies_are_files(defog: Loaded) -> None:
    for url, _ in defog["sqlite"].values():
        assert Path(url.removeprefix("sqlite:///")).is_file()
