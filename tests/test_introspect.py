"""Introspection on the real engines: odd identifiers, keyless tables, views, comments,
namespaces, sample values, and hundreds of tables."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.introspect import introspect_url
from tests.support.databases import my_create_database, my_drop_database, pg_create_database, pg_drop_database


def test_sample_database_on_each_engine(sample_url: str) -> None:
    schema = introspect_url(sample_url)
    employees = schema.find_table("employees")
    assert employees is not None and employees.primary_key == ("id",)
    fks = {(fk.columns, fk.ref_table, fk.ref_columns) for fk in employees.foreign_keys}
    assert fks == {(("department_id",), "departments", ("id",)), (("manager_id",), "employees", ("id",))}
    assert not next(c for c in employees.columns if c.name == "name").nullable
    departments = schema.find_table("departments")
    assert departments is not None
    assert "Engineering" in next(c for c in departments.columns if c.name == "name").samples
    assert "Légal" in next(c for c in departments.columns if c.name == "name").samples
    details = schema.find_table("Order Details", quoted=True)
    assert details is not None and details.primary_key == ("Order ID",)
    assert {c.name for c in details.columns} >= {"Order ID", "select", "Unit Price"}
    audit = schema.find_table("audit_log")
    assert audit is not None and audit.primary_key == () and audit.foreign_keys == ()
    view = schema.find_table("department_payroll")
    assert view is not None and view.kind == "view"
    if schema.dialect != "sqlite":
        assert departments.comment == "Company departments"


def test_introspection_is_stable(sample_url: str) -> None:
    assert introspect_url(sample_url).hash == introspect_url(sample_url).hash


ODD_SQLITE = """
CREATE TABLE "weird ""quoted"" name" ("col with space" TEXT, "MiXeD" INTEGER, "order" TEXT, "group" INTEGER);
CREATE TABLE "select" ("from" INTEGER PRIMARY KEY, "where" TEXT);
CREATE TABLE nokeys (a, b);
INSERT INTO "weird ""quoted"" name" VALUES ('x y', 1, 'first', 2);
"""


def test_odd_identifiers_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(ODD_SQLITE)
    schema = introspect_url(f"sqlite:///{path}")
    names = {t.name for t in schema.tables}
    assert names == {'weird "quoted" name', "select", "nokeys"}
    assert schema.find_table("SELECT") is not None  # SQLite: case-insensitive


@pytest.fixture
def pg_odd() -> Iterator[str]:
    name = f"c2s_odd_{uuid.uuid4().hex[:8]}"
    url = pg_create_database(
        name,
        """
        CREATE SCHEMA sales;
        CREATE SCHEMA "Mixed Schema";
        CREATE TABLE sales."Orders" ("Id" INT PRIMARY KEY, "order" TEXT, "user" TEXT);
        CREATE TABLE "Mixed Schema"."a b" (x INT REFERENCES sales."Orders"("Id"));
        CREATE TABLE public.plain (v TEXT);
        COMMENT ON COLUMN sales."Orders"."order" IS 'Order reference';
        CREATE MATERIALIZED VIEW sales.order_refs AS SELECT "order" FROM sales."Orders";
        INSERT INTO public.plain VALUES ('α'), ('β'), (NULL), (repeat('x', 200));
    """,
    )
    yield url
    pg_drop_database(name)


def test_postgres_namespaces_and_quoting(pg_odd: str) -> None:
    schema = introspect_url(pg_odd)
    assert schema.default_namespace == "public"
    assert {t.qualified_name for t in schema.tables} == {
        "sales.Orders",
        "Mixed Schema.a b",
        "public.plain",
        "sales.order_refs",
    }
    orders = schema.find_table("Orders", "sales", quoted=True)
    assert orders is not None and orders.primary_key == ("Id",)
    assert next(c for c in orders.columns if c.name == "order").comment == "Order reference"
    assert schema.find_table("orders", "sales") is None  # unquoted folds to lower case
    ab = schema.find_table("a b", "Mixed Schema", quoted=True)
    assert ab is not None and ab.foreign_keys[0].ref_namespace == "sales"
    plain = schema.find_table("plain")
    assert plain is not None and plain.columns[0].samples == ("α", "β")  # long values and NULL left out
    assert schema.find_table("order_refs", "sales").kind == "view"  # type: ignore[union-attr]


def test_mysql_keyless_and_reserved(my_url: str) -> None:
    name = f"c2s_odd_{uuid.uuid4().hex[:8]}"
    url = my_create_database(
        name,
        "CREATE TABLE `group` (`key` INT, `Mixed Col` VARCHAR(10));\nINSERT INTO `group` VALUES (1, 'v')",
    )
    try:
        schema = introspect_url(url)
        table = schema.find_table("group")
        assert table is not None and table.primary_key == () and table.namespace == name
        assert [c.samples for c in table.columns] == [(), ("v",)]
    finally:
        my_drop_database(name)


def _wide_script(n: int, dialect: str) -> str:
    statements = []
    for i in range(n):
        ref = f", parent_id INTEGER REFERENCES t{i - 1:03d}(id)" if i else ""
        statements.append(
            f"CREATE TABLE t{i:03d} (id INTEGER PRIMARY KEY, label VARCHAR(40), amount NUMERIC(10,2){ref})"
        )
    return ";\n".join(statements) + ";\n"


def test_three_hundred_tables(tmp_path: Path) -> None:
    path = tmp_path / "wide.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_wide_script(300, "sqlite"))
    schema = introspect_url(f"sqlite:///{path}")
    assert len(schema.tables) == 300
    assert schema.find_table("t299").foreign_keys[0].ref_table == "t298"  # type: ignore[union-attr]


def test_three_hundred_tables_postgres() -> None:
    name = f"c2s_wide_{uuid.uuid4().hex[:8]}"
    url = pg_create_database(name, _wide_script(300, "postgres"))
    try:
        schema = introspect_url(url)
        assert len(schema.tables) == 300
        assert schema.find_table("t150").foreign_keys[0].ref_table == "t149"  # type: ignore[union-attr]
    finally:
        pg_drop_database(name)


def test_introspection_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(ODD_SQLITE)
    before = path.read_bytes()
    introspect_url(f"sqlite:///{path}")
    assert path.read_bytes() == before
    assert not (tmp_path / "ro.db-journal").exists()
