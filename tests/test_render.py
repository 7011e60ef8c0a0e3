"""Schema text for prompts: whole, and budgeted by relevance to the question."""

from __future__ import annotations

from schemas.model import Column, DatabaseSchema, ForeignKey, Table
from schemas.render import approx_tokens, quote_ident, rank_tables, render_schema, render_table


def _table(
    name: str, *cols: str, fks: tuple[ForeignKey, ...] = (), samples: dict[str, tuple[str, ...]] | None = None
) -> Table:
    samples = samples or {}
    return Table(
        name=name,
        columns=tuple(Column(name=c, type="TEXT", samples=samples.get(c, ())) for c in cols),
        foreign_keys=fks,
    )


def _big_schema() -> DatabaseSchema:
    filler = tuple(_table(f"zz_filler_{i:03d}", "id", "payload", "created") for i in range(200))
    core = (
        _table("departments", "id", "name", samples={"name": ("Engineering", "Sales")}),
        _table(
            "employees",
            "id",
            "name",
            "department_id",
            "salary",
            fks=(ForeignKey(columns=("department_id",), ref_table="departments", ref_columns=("id",)),),
        ),
        _table("invoices", "id", "customer", "total"),
        _table(
            "badges",
            "id",
            "employee_id",
            fks=(ForeignKey(columns=("employee_id",), ref_table="employees", ref_columns=("id",)),),
        ),
    )
    return DatabaseSchema(dialect="sqlite", tables=core + filler)


def test_quoting() -> None:
    assert quote_ident("plain_name", "postgres") == "plain_name"
    assert quote_ident("Mixed", "postgres") == '"Mixed"'
    assert quote_ident("select", "sqlite") == '"select"'
    assert quote_ident('we"ird', "postgres") == '"we""ird"'
    assert quote_ident("a b", "mysql") == "`a b`"


def test_render_table_keys_comments_samples() -> None:
    table = Table(
        namespace="sales",
        name="Orders",
        columns=(
            Column(name="id", type="INTEGER", nullable=False),
            Column(name="status", type="TEXT", comment="Order\nstatus", samples=("open", "it's")),
        ),
        primary_key=("id",),
        foreign_keys=(ForeignKey(columns=("id",), ref_namespace="public", ref_table="x", ref_columns=("id",)),),
        comment="All orders",
    )
    schema = DatabaseSchema(dialect="postgres", default_namespace="public", tables=(table,))
    assert render_table(table, schema) == (
        'CREATE TABLE sales."Orders" ( -- All orders\n'
        "  id INTEGER NOT NULL,\n"
        "  status TEXT, -- Order status; e.g. 'open', 'it''s'\n"
        "  PRIMARY KEY (id),\n"
        "  FOREIGN KEY (id) REFERENCES x(id)\n"
        ");"
    )


def test_small_schema_is_rendered_whole() -> None:
    schema = _big_schema()
    whole = render_schema(schema)
    assert whole.count("CREATE TABLE") == 204
    assert render_schema(schema, max_tokens=10**9) == whole


def test_budget_keeps_relevant_tables_and_neighbours() -> None:
    schema = _big_schema()
    text = render_schema(schema, question="average salary of employees by department", max_tokens=300)
    assert approx_tokens(text) <= 300 + 20
    assert "CREATE TABLE employees" in text and "CREATE TABLE departments" in text
    assert "zz_filler" not in text.split("--")[0] or text.count("zz_filler") < 10
    assert "more table(s) not shown" in text


def test_sample_values_count_as_matches() -> None:
    order = rank_tables(_big_schema(), "how many people work in Engineering?")
    assert order[0] == "departments"
    assert order.index("employees") < order.index("zz_filler_000")  # a foreign-key neighbour


def test_rank_is_deterministic_without_matches() -> None:
    schema = _big_schema()
    assert rank_tables(schema, "") == rank_tables(schema, "")
