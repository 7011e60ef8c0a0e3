"""Schema text for prompts: whole, and budgeted by relevance to the question."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import pytest

from samples import SAMPLES, build_sample
from schemas.introspect import introspect_url
from schemas.model import Column, DatabaseSchema, ForeignKey, Table
from schemas.render import approx_tokens, quote_ident, rank_tables, render_schema, render_table, table_scores


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


# --- one text per database, for the engine's prefix cache (issue 17) ------------------------

QUESTIONS = (
    "how many people work in Engineering?",
    "total sales by region last month",
    "which customers ordered the most products?",
    "average salary of employees by department",
)


def _rendered(text: str) -> list[str]:
    return re.findall(r"^CREATE TABLE (\S+) \(", text, flags=re.MULTILINE)


def _spider_like() -> DatabaseSchema:
    """Over any small budget, not in name order, and the tables the questions ask about last,
    so that a text ordered by relevance could not pass for one in the schema's order."""
    filler = tuple(_table(f"log_{i:02d}", "id", "payload", "created") for i in (7, 3, 11, 1, 9, 5, 0, 8, 2, 10, 6, 4))
    asked = (
        _table("regions", "id", "name", samples={"name": ("North", "South")}),
        _table(
            "sales",
            "id",
            "region_id",
            "amount",
            fks=(ForeignKey(columns=("region_id",), ref_table="regions", ref_columns=("id",)),),
        ),
        _table("departments", "id", "name", samples={"name": ("Engineering", "Support")}),
        _table(
            "employees",
            "id",
            "name",
            "department_id",
            "salary",
            fks=(ForeignKey(columns=("department_id",), ref_table="departments", ref_columns=("id",)),),
        ),
    )
    return DatabaseSchema(dialect="sqlite", tables=filler + asked)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DatabaseSchema]:
    folder = tmp_path_factory.mktemp("samples")
    return {
        name: introspect_url(f"sqlite:///{build_sample(name, folder / f'{name}.sqlite', today=dt.date(2025, 6, 1))}")
        for name in SAMPLES
    }


@pytest.mark.parametrize("name", SAMPLES)
def test_a_schema_within_budget_is_the_same_text_for_every_question(
    samples: dict[str, DatabaseSchema], name: str
) -> None:
    texts = {render_schema(samples[name], question=q, max_tokens=1500) for q in QUESTIONS}
    assert texts == {render_schema(samples[name])}


@pytest.mark.parametrize("question", [*QUESTIONS[:2], QUESTIONS[3], "which region had the largest amount?"])
def test_over_budget_the_kept_tables_are_the_relevant_ones_in_the_schema_order(question: str) -> None:
    schema = _spider_like()
    text = render_schema(schema, question=question, max_tokens=200)
    shown = _rendered(text)
    order = [t.name for t in schema.tables]
    assert shown == sorted(shown, key=order.index) and len(shown) < len(order)
    scores = table_scores(schema, question)
    best = max(scores.values())
    assert best > 0 and {n for n, s in scores.items() if s == best} <= set(shown)
    assert text.endswith(f"-- {len(order) - len(shown)} more table(s) not shown")


def test_over_budget_two_questions_share_the_schemas_first_tables() -> None:
    """The room the relevant tables leave goes to the others in the schema's order, the same
    for both questions: their texts begin alike and part only where their own tables start
    (ranked, each began with its own tables)."""
    schema = _spider_like()
    sales = render_schema(schema, question="total sales by region", max_tokens=200)
    people = render_schema(schema, question="salary of employees by department", max_tokens=200)
    assert _rendered(sales)[-2:] == ["regions", "sales"] and _rendered(people)[-2:] == ["departments", "employees"]
    first = "\n\n".join(render_table(t, schema) for t in schema.tables[:4]) + "\n\n"
    assert sales.startswith(first) and people.startswith(first)


def test_the_text_is_the_same_in_every_process() -> None:
    """Ties among foreign-key neighbours are broken by name, not by set order (which string
    hashing changes from one process to the next), when only one of them fits."""
    script = (
        "from schemas.model import Column, DatabaseSchema, ForeignKey, Table\n"
        "from schemas.render import render_schema\n"
        "col = lambda n: Column(name=n, type='TEXT')\n"
        "fk = lambda t: ForeignKey(columns=(t + '_id',), ref_table=t, ref_columns=('id',))\n"
        "kids = tuple(Table(name=f'kid_{i}', columns=(col('id'), col('x'))) for i in 'qwertyuiop')\n"
        "hub = Table(name='orders', columns=(col('id'),) + tuple(col(k.name + '_id') for k in kids),"
        " foreign_keys=tuple(fk(k.name) for k in kids))\n"
        "s = DatabaseSchema(dialect='sqlite', tables=(hub, *kids))\n"
        "print(render_schema(s, question='orders', max_tokens=110))\n"
    )
    texts = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(6)
    }
    assert len(texts) == 1 and "CREATE TABLE kid_e (" in texts.pop()
