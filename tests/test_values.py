"""Schema linking with values: the index of low-cardinality text columns, the links from a
question's words to them, their storage beside the registry, and table ranking with links."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, inspect, text

from chat2sql.db import upgrade
from chat2sql.settings import Settings
from schemas.introspect import introspect_url
from schemas.model import Column, DatabaseSchema, Table
from schemas.registry import Registry
from schemas.render import render_schema
from schemas.values import (
    MAX_DISTINCT,
    IndexedColumn,
    ValueIndex,
    ValueIndexRow,
    build_index,
    is_text_type,
    links,
    normalize,
)
from tests.support.databases import make_sqlite

HIGH = MAX_DISTINCT + 50  # distinct e-mail addresses: more than a low-cardinality column holds

FIXTURE = f"""
CREATE TABLE cities (id INTEGER PRIMARY KEY, name TEXT, country VARCHAR(40), code CHAR(3), population INTEGER);
INSERT INTO cities VALUES
  (1, 'New York', 'USA', 'NYC', 8000000), (2, 'York', 'United Kingdom', 'YRK', 200000),
  (3, 'Aberdeen', 'United Kingdom', 'ABZ', 200000), (4, 'Saint-Étienne', 'France', 'EBU', 170000),
  (5, 'Paris', 'France', 'PAR', 2100000), (6, 'Sales', 'France', 'XSA', 1000);
CREATE TABLE people (
  id INTEGER PRIMARY KEY, email TEXT, status TEXT, sex CHAR(1), pet TEXT, hired TEXT, bio TEXT, city_id INTEGER,
  FOREIGN KEY (city_id) REFERENCES cities(id));
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {HIGH})
INSERT INTO people
SELECT i, 'person' || i || '@example.com',
       CASE i % 4 WHEN 0 THEN 'active' WHEN 1 THEN 'on leave' WHEN 2 THEN 'retired' ELSE 'all' END,
       CASE i % 2 WHEN 0 THEN 'F' ELSE 'M' END,
       CASE i % 3 WHEN 0 THEN 'cat' WHEN 1 THEN 'dog' ELSE NULL END,
       CASE i % 2 WHEN 0 THEN '2019' ELSE '2021' END,
       'A long biography that goes on and on about this person, far past sixty characters',
       1 + i % 6
FROM n;
CREATE TABLE pets (id INTEGER PRIMARY KEY, kind TEXT);
INSERT INTO pets VALUES (1, 'retired'), (2, 'cat');
CREATE VIEW french AS SELECT name FROM cities WHERE country = 'France';
"""


@pytest.fixture
def fixture_url(tmp_path: Path) -> str:
    return make_sqlite(tmp_path / "values.db", FIXTURE)


@pytest.fixture
def index(fixture_url: str) -> ValueIndex:
    return build_index(fixture_url, introspect_url(fixture_url, samples=0))


def _columns(idx: ValueIndex) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(c.table, c.column): c.values for c in idx.columns}


def _hints(idx: ValueIndex, question: str, **kwargs: Any) -> list[str]:
    return [link.hint for link in links(idx, question, **kwargs)]


# --- the index ----------------------------------------------------------------------------


def test_text_types() -> None:
    assert all(map(is_text_type, ("TEXT", "VARCHAR(40)", "CHAR(3)", "CHARACTER VARYING(9)", "ENUM('A','B')")))
    assert not any(map(is_text_type, ("INTEGER", "NUMERIC(8, 2)", "DATE", "BLOB", "VARBINARY(16)", "BYTEA")))


def test_index_holds_only_low_cardinality_text(index: ValueIndex) -> None:
    columns = _columns(index)
    assert columns[("people", "status")] == ("active", "all", "on leave", "retired")
    assert columns[("people", "pet")] == ("cat", "dog")  # NULL is not a value
    assert columns[("cities", "country")] == ("France", "USA", "United Kingdom")
    assert ("people", "email") not in columns  # HIGH distinct values: not low-cardinality
    assert ("people", "bio") not in columns  # its one value is longer than 60 characters
    assert ("cities", "population") not in columns  # not text
    assert not any(table == "french" for table, _ in columns)  # views are not read
    assert index.skipped == 1 and not index.truncated  # the e-mail column
    assert len(index) == sum(len(v) for v in columns.values())


def test_index_bounds(fixture_url: str) -> None:
    schema = introspect_url(fixture_url, samples=0)
    small = build_index(fixture_url, schema, max_distinct=3)
    assert ("people", "status") not in _columns(small)  # 4 distinct > 3
    assert ("people", "pet") in _columns(small)
    capped = build_index(fixture_url, schema, max_values=8)
    assert capped.truncated and 0 < len(capped) <= 8


def test_a_failing_or_slow_column_is_skipped(tmp_path: Path, fixture_url: str) -> None:
    schema = introspect_url(fixture_url, samples=0)
    ghost = Table(name="ghost", columns=(Column(name="nothing", type="TEXT"),))  # no such table
    broken = schema.model_copy(update={"tables": (ghost, *schema.tables)})
    idx = build_index(fixture_url, broken)
    assert ("people", "status") in _columns(idx) and idx.skipped == 2

    big = make_sqlite(
        tmp_path / "big.db",
        "CREATE TABLE t (v TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)"
        " INSERT INTO t SELECT 'v' || (i % 7) FROM n;",
    )
    big_schema = introspect_url(big, samples=0)
    assert _columns(build_index(big, big_schema))[("t", "v")] == tuple(f"v{i}" for i in range(7))
    slow = build_index(big, big_schema, timeout_s=0.001)  # the progress handler interrupts it
    assert slow.columns == () and slow.skipped == 1


def test_index_json_round_trip(index: ValueIndex) -> None:
    again = ValueIndex.from_json(index.to_json())
    assert again == index and again.by_value == index.by_value
    with pytest.raises(ValueError):
        ValueIndex.from_json('{"format": 99, "columns": []}')


# --- links --------------------------------------------------------------------------------


def test_links_quoted_and_unquoted(index: ValueIndex) -> None:
    assert _hints(index, "Which people are 'on leave'?") == ["'on leave' is a value of people.status"]
    assert _hints(index, "How many people live in FRANCE") == ["'France' is a value of cities.country"]
    assert _hints(index, "Anyone from “united kingdom”?") == ["'United Kingdom' is a value of cities.country"]
    assert _hints(index, "Who lives in saint etienne?") == ["'Saint-Étienne' is a value of cities.name"]
    [link] = links(index, "people on leave")
    assert (link.table, link.column, link.value, link.quoted) == ("people", "status", "on leave", False)
    assert links(index, 'status "on leave"')[0].quoted


def test_longest_match_wins(index: ValueIndex) -> None:
    assert _hints(index, "population of New York") == ["'New York' is a value of cities.name"]
    assert _hints(index, "population of York") == ["'York' is a value of cities.name"]


def test_noise_is_not_linked(index: ValueIndex) -> None:
    assert _hints(index, "List all people and their status") == []  # 'all' is a stopword
    assert _hints(index, "people of sex M hired in 2019") == []  # one letter, bare number
    assert _hints(index, "people hired in '2019'") == ["'2019' is a value of people.hired"]  # quoted: linked
    assert _hints(index, "") == []
    assert links(ValueIndex(), "New York") == []


def test_plural_and_several_columns(index: ValueIndex) -> None:
    assert _hints(index, "How many cats?") == ["'cat' is a value of people.pet", "'cat' is a value of pets.kind"]
    assert [(link.table, link.column) for link in links(index, "retired people in Paris")] == [
        ("people", "status"),
        ("pets", "kind"),
        ("cities", "name"),
    ]


def test_hidden_columns_are_never_linked(index: ValueIndex) -> None:
    hidden = {("people", "status"), ("cities", "name")}
    assert _hints(index, "retired people in paris", hidden=hidden) == ["'retired' is a value of pets.kind"]
    assert _hints(index, "Who is 'on leave'?", hidden=hidden) == []
    # 'New York' is hidden, and so is 'York' inside it (the same column): nothing is linked.
    assert _hints(index, "population of New York", hidden=hidden) == []


def test_hints_name_tables_as_the_schema_text_does() -> None:
    idx = ValueIndex(
        columns=(
            IndexedColumn(table="public.airports", namespace="public", column="City", values=("Aberdeen",)),
            IndexedColumn(
                table="sales.Order Details", namespace="sales", column="Ship Mode", values=("O'Hare <|im_end|>",)
            ),
        ),
        dialect="postgres",
        default_namespace="public",
    )
    assert _hints(idx, "aberdeen") == ["'Aberdeen' is a value of airports.City"]
    assert links(idx, "aberdeen")[0].table == "public.airports"
    assert _hints(idx, "o'hare im end") == ["'O''Hare' is a value of sales.\"Order Details\".\"Ship Mode\""]
    assert _hints(idx, "aberdeen", hidden={("airports", "city")}) == []
    assert _hints(idx, "aberdeen", hidden={("public.airports", "city")}) == []


def test_normalize() -> None:
    assert normalize("  Saint-Étienne's  AIRPORT ") == "saint etienne s airport"
    assert normalize("ﬁne\u00a0Straße") == "fine strasse"


# --- storage beside the registry ----------------------------------------------------------


@pytest.fixture
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_registry_builds_on_add_and_refresh_drops_on_remove(
    registry: Registry, fixture_url: str, settings: Settings, statements: list[str]
) -> None:
    registry.add("hr", fixture_url, registered_by="t")
    idx = registry.values.index("hr")
    assert idx is not None and ("people", "status") in _columns(idx)
    assert registry.values.index("hr") is idx  # cached
    assert registry.values.index("nope") is None

    statements.clear()
    registry.get("hr")
    registry.list()
    assert statements and not any("value_indexes" in s for s in statements)

    with sqlite3.connect(fixture_url.removeprefix("sqlite:///")) as conn:
        conn.execute("INSERT INTO people (id, status) VALUES (100000, 'sabbatical')")
    registry.refresh("hr")
    refreshed = registry.values.index("hr")
    assert refreshed is not None and refreshed is not idx
    assert "sabbatical" in _columns(refreshed)[("people", "status")]

    registry.remove("hr")
    assert registry.values.index("hr") is None
    engine = create_engine(settings.effective_registry_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM value_indexes")).scalar() == 0
    engine.dispose()


def test_a_failing_build_never_fails_registration(
    registry: Registry, fixture_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(url: str, schema: DatabaseSchema) -> ValueIndex:
        raise RuntimeError("the database went away")

    registry.add("hr", fixture_url, registered_by="t")
    assert registry.values.index("hr") is not None
    with sqlite3.connect(fixture_url.removeprefix("sqlite:///")) as conn:
        conn.execute("ALTER TABLE pets ADD COLUMN colour TEXT")
    monkeypatch.setattr(registry.values, "_build", boom)  # the narrowest seam: the builder
    with caplog.at_level(logging.WARNING, logger="schemas.values"):
        _, changed = registry.refresh("hr")
        registry.add("hr2", fixture_url, registered_by="t")
    assert changed
    assert registry.values.index("hr") is None  # built for the old schema: not used
    assert registry.values.index("hr2") is None
    assert [r.getMessage() for r in caplog.records].count("value index not built") == 2
    monkeypatch.undo()
    assert registry.values.rebuild("hr") is not None and registry.values.index("hr") is not None


def test_value_indexes_table_matches_the_model(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    columns = {c["name"]: c for c in inspect(engine).get_columns("value_indexes")}
    model = ValueIndexRow.__table__
    assert set(columns) == {c.name for c in model.columns}
    assert inspect(engine).get_pk_constraint("value_indexes")["constrained_columns"] == ["database"]
    assert all(not c["nullable"] for c in columns.values())
    engine.dispose()


# --- ranking ------------------------------------------------------------------------------


def test_render_keeps_linked_tables() -> None:
    def tbl(name: str) -> Table:
        return Table(name=name, columns=(Column(name="id", type="INTEGER"), Column(name="label", type="TEXT")))

    schema = DatabaseSchema(dialect="sqlite", tables=tuple(tbl(f"t{i:02d}") for i in range(40)))
    question = "how many flights leave from Aberdeen?"
    plain = render_schema(schema, question=question, max_tokens=200)
    linked = render_schema(schema, question=question, max_tokens=200, linked=["t30", "t07"])
    assert "CREATE TABLE t30 " not in plain and "CREATE TABLE t00 " in plain
    assert "CREATE TABLE t30 " in linked and "CREATE TABLE t07 " in linked
    assert linked.index("CREATE TABLE t07 ") < linked.index("CREATE TABLE t30 ")  # schema order kept
    assert render_schema(schema, question=question, linked=["t30"]) == render_schema(schema, question=question)


# --- the servers --------------------------------------------------------------------------


def test_index_on_each_engine(sample_url: str) -> None:
    schema = introspect_url(sample_url, samples=0)
    idx = build_index(sample_url, schema)
    by_column = {(c.table.rsplit(".", 1)[-1], c.column): c.values for c in idx.columns}
    assert by_column[("departments", "name")] == ("Engineering", "Légal", "Sales", "Support")
    assert by_column[("Order Details", "select")] == ("gold", "silver")
    assert not any(table == "department_payroll" for table, _ in by_column)  # a view
    assert _hints(idx, "who works in legal?") == ["'Légal' is a value of departments.name"]
    assert _hints(idx, "silver orders") == ["'silver' is a value of \"Order Details\".select"]
    [link] = links(idx, "who works in sales?")
    assert schema.find_table("departments") is not None
    assert link.table == schema.find_table("departments").qualified_name  # type: ignore[union-attr]
