"""The business glossary: versioned entries in the registry's store, validated against the
schema; what the model sees (``apply``, ``relevant``); chat and CLI commands; explanations;
the shipped glossary evaluation set."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from bot.core.assistant import Assistant
from chat2sql import messages
from chat2sql.db import upgrade
from chat2sql.errors import UnknownDatabase
from chat2sql.messages import user_message
from chat2sql.settings import Settings
from evals.samples import SETS, build
from schemas import cli as schemas_cli
from schemas import glossary as terms
from schemas.glossary import (
    MAX_DEFINITION_CHARS,
    MAX_NAME_CHARS,
    GlossaryEntry,
    GlossaryRow,
    GlossaryUnchanged,
    HiddenColumnInUse,
    InvalidGlossaryText,
    InvalidMetric,
    NotInGlossary,
    UnknownGlossaryColumn,
)
from schemas.registry import Registry
from schemas.render import approx_tokens, render_schema
from tests.support.assistant import ADMIN, ALICE, BOB, make_assistant
from tests.support.cli import Cli
from tests.support.clients import ScriptedClient


@pytest.fixture
def hr(registry: Registry, sqlite_url: str) -> Registry:
    registry.add("hr", sqlite_url, registered_by="t")
    return registry


def _rows(registry: Registry) -> int:
    return len(registry.glossary.history("hr"))


_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# --- the store ------------------------------------------------------------------------------


def test_define_redefine_undefine_and_history(hr: Registry) -> None:
    g = hr.glossary
    first = g.define("hr", None, "Senior  Engineer", "an engineer hired before 2021", by="slack:U1")
    assert (first.kind, first.name, first.version, first.created_by) == ("term", "senior engineer", 1, "slack:U1")
    assert first.hint == "senior engineer: an engineer hired before 2021"
    second = g.define("hr", None, "senior engineer", "an engineer hired before 2020", by="slack:U2")
    assert second.version == 2 and second.created_at.tzinfo is not None
    assert [(e.name, e.version, e.definition) for e in g.entries("hr")] == [
        ("senior engineer", 2, "an engineer hired before 2020")
    ]
    g.remove("hr", None, "Senior Engineer", by="slack:U1")
    assert g.entries("hr") == ()
    assert [(e.version, e.active) for e in g.history("hr")] == [(1, False), (2, False)]
    third = g.define("hr", None, "senior engineer", "an engineer hired before 2021", by="slack:U1")
    assert third.version == 3  # a version number is never reused
    with pytest.raises(NotInGlossary):
        g.remove("hr", None, "nobody", by="t")


def test_the_same_definition_again_is_unchanged(hr: Registry) -> None:
    hr.glossary.define("hr", None, "payroll", "SUM(employees.salary)", by="t")
    with pytest.raises(GlossaryUnchanged) as raised:
        hr.glossary.define("hr", "metric", "Payroll", "SUM(employees.salary)", by="t")
    assert "unchanged (still v1)" in raised.value.message and _rows(hr) == 1


def test_metric_or_term_is_inferred_and_a_term_can_become_a_metric(hr: Registry) -> None:
    g = hr.glossary
    assert g.define("hr", None, "payroll", "SUM(employees.salary)", by="t").kind == "metric"
    assert g.define("hr", None, "pay", "salary", by="t").kind == "metric"  # a bare real column
    assert g.define("hr", None, "veteran", "someone here since before 2020", by="t").kind == "term"
    assert g.define("hr", None, "non-manager", "non-manager", by="t").kind == "term"  # bare words joined by '-'
    assert g.define("hr", None, "star", "big spender", by="t").kind == "term"  # `big AS spender` is no metric
    assert g.define("hr", "term", "headcount", "COUNT(employees.id)", by="t").kind == "term"  # said so
    redefined = g.define("hr", None, "veteran", "MIN(employees.hired_on)", by="t")
    assert (redefined.kind, redefined.version) == ("metric", 2)
    assert [e.kind for e in g.entries("hr") if e.name == "veteran"] == ["metric"]  # one active per name


@pytest.mark.parametrize(
    ("definition", "column", "table", "table_exists"),
    [
        ("SUM(order_lines.revenue)", "revenue", "order_lines", False),
        ("SUM(employees.bonus)", "bonus", "employees", True),
        ("AVG(bonus) * 2", "bonus", None, True),
        ('SUM("Order Details"."Unit Cost")', "Unit Cost", "Order Details", True),
    ],
)
def test_a_metric_naming_an_unknown_column_is_refused(
    hr: Registry, definition: str, column: str, table: str | None, table_exists: bool
) -> None:
    with pytest.raises(UnknownGlossaryColumn) as raised:
        hr.glossary.define("hr", None, "revenue", definition, by="t")
    err = raised.value
    assert (err.column, err.table, err.table_exists) == (column, table, table_exists)
    assert column in user_message(err) and "nothing was changed" in user_message(err)
    assert _rows(hr) == 0


def test_quoted_columns_and_bad_metrics(hr: Registry) -> None:
    entry = hr.glossary.define("hr", None, "order value", 'SUM("Order Details"."Unit Price")', by="t")
    assert entry.kind == "metric"
    units = hr.glossary.define("hr", None, "units", '"Order Details"."Quantity"', by="t")
    assert units.kind == "metric" and units.definition == '"Order Details"."Quantity"'  # its quotes kept
    described = hr.glossary.define("hr", "column", '"order details"."unit price"', "net of tax", by="t")
    assert described.name == "Order Details.Unit Price"  # as the schema spells it
    seen = terms.apply(hr.get("hr").schema, hr.glossary.entries("hr")).find_table("Order Details", quoted=True)
    assert seen is not None and {c.name: c.comment for c in seen.columns}["Unit Price"] == "net of tax"
    for bad in ("SELECT SUM(salary) FROM employees", "COUNT(*)", "salary; DROP TABLE employees", "pay me"):
        with pytest.raises(InvalidMetric):
            hr.glossary.define("hr", "metric", "bad", bad, by="t")
    assert _rows(hr) == 3


def test_column_descriptions_must_name_a_real_column(hr: Registry) -> None:
    entry = hr.glossary.define("hr", "column", "EMPLOYEES.hired_on", "the first day at work", by="t")
    assert entry.name == "employees.hired_on" and entry.hint == "employees.hired_on: the first day at work"
    for column, missing in (("employees.start", "start"), ("staff.hired_on", "hired_on")):
        with pytest.raises(UnknownGlossaryColumn) as raised:
            hr.glossary.define("hr", "column", column, "x", by="t")
        assert raised.value.column == missing
    with pytest.raises(InvalidGlossaryText) as bare:
        hr.glossary.define("hr", "column", "hired_on", "x", by="t")
    assert "TABLE.COLUMN" in bare.value.message
    assert _rows(hr) == 1


@pytest.mark.parametrize(
    ("name", "definition", "what", "problem"),
    [
        ("", "something", "name", "is empty"),
        ('  ""  ', "something", "name", "is empty"),
        ("churn", "   ", "definition", "is empty"),
        ("x" * (MAX_NAME_CHARS + 1), "something", "name", "longer than"),
        ("churn", "y" * (MAX_DEFINITION_CHARS + 1), "definition", "longer than"),
        ("churn<|im_end|>", "something", "name", "control token <|im_end|>"),
        ("churn", "left <|im_start|>system", "definition", "control token <|im_start|>"),
        ("churn", "bell\x07 ringing", "definition", "control characters"),
    ],
)
def test_bad_text_is_refused(hr: Registry, name: str, definition: str, what: str, problem: str) -> None:
    with pytest.raises(InvalidGlossaryText) as raised:
        hr.glossary.define("hr", None, name, definition, by="t")
    assert raised.value.what == what and problem in raised.value.message
    assert _rows(hr) == 0


def test_unknown_database_and_unknown_kind(hr: Registry) -> None:
    with pytest.raises(UnknownDatabase):
        hr.glossary.define("sales", None, "churn", "x", by="t")
    with pytest.raises(UnknownDatabase):
        hr.glossary.remove("sales", None, "churn", by="t")
    with pytest.raises(InvalidGlossaryText):
        hr.glossary.define("hr", "synonym", "churn", "x", by="t")
    assert _rows(hr) == 0


def test_hide_unhide_and_apply(hr: Registry) -> None:
    g = hr.glossary
    g.define("hr", "hidden", "employees.email", "", by="t")
    g.define("hr", "hidden", "departments.id", "", by="t")  # a primary key, referenced by a foreign key
    g.define("hr", "column", "employees.salary", "yearly, in EUR", by="t")
    assert terms.hidden_columns(g.entries("hr")) == {("employees", "email"), ("departments", "id")}
    schema = hr.get("hr").schema
    seen = terms.apply(schema, g.entries("hr"))
    employees = seen.find_table("employees")
    departments = seen.find_table("departments")
    assert employees is not None and departments is not None
    assert "email" not in {c.name for c in employees.columns} and "id" not in {c.name for c in departments.columns}
    assert departments.primary_key == ()
    assert all(fk.ref_table != "departments" for fk in employees.foreign_keys)
    assert any(fk.ref_table == "employees" for fk in employees.foreign_keys)  # manager_id stays
    salary = seen.find_column(employees, "salary")
    assert salary is not None and salary.comment == "yearly, in EUR"
    rendered = render_schema(seen)
    assert "email" not in rendered and "ada@example.com" not in rendered and "yearly, in EUR" in rendered
    assert "ada@example.com" in render_schema(schema)  # the sample value was there before

    with pytest.raises(HiddenColumnInUse):  # a metric would show the model the hidden column
        g.define("hr", None, "mailers", "COUNT(DISTINCT employees.email)", by="t")
    g.remove("hr", "hidden", "Employees.Email", by="t")
    assert g.define("hr", None, "mailers", "COUNT(DISTINCT employees.email)", by="t").kind == "metric"
    with pytest.raises(HiddenColumnInUse) as in_use:  # nor can a column a metric uses be hidden
        g.define("hr", "hidden", "employees.email", "", by="t")
    assert in_use.value.metric == "mailers"
    with pytest.raises(NotInGlossary):
        g.remove("hr", "hidden", "employees.email", by="t")


def test_relevant_picks_the_entries_a_question_concerns_within_budget() -> None:
    def entry(kind: str, name: str, definition: str) -> GlossaryEntry:
        return GlossaryEntry(
            database="s", kind=kind, name=name, definition=definition, version=1, created_by="t", created_at=_NOW
        )

    active = entry("term", "active customer", "a customer with an order in the last 90 days")
    revenue = entry("metric", "revenue", "SUM(order_items.revenue)")
    category = entry("metric", "revenue per category", "x" * 600)
    segment = entry("column", "customers.segment", "SMB, Mid-Market or Enterprise")
    hidden = entry("hidden", "customers.email", "")
    churn = entry("term", "churned account", "no order for a year")
    entries = [churn, segment, hidden, revenue, active, category]

    assert terms.relevant(entries, "How many active customers per country?") == [active]
    assert terms.relevant(entries, "Revenue by segment of customers") == [revenue, segment]
    assert terms.relevant(entries, "customer emails") == []  # hidden entries never; half a name is no match
    long_name = entry("term", "customer lifetime value", "what a customer brings in")
    assert terms.relevant([long_name], "the lifetime value of customers in France") == [long_name]
    assert terms.relevant([long_name], "value of customers") == [long_name]  # all but one of three words
    assert terms.relevant(entries, "list the products") == []
    big = terms.relevant(entries, "revenue per category", budget_tokens=approx_tokens(revenue.hint + "\n"))
    assert big == [revenue]  # the better match does not fit; the next one does
    assert terms.relevant(entries, "revenue", budget_tokens=1) == []


def test_registry_remove_drops_the_glossary(hr: Registry, sqlite_url: str) -> None:
    hr.glossary.define("hr", None, "payroll", "SUM(employees.salary)", by="t")
    hr.glossary.define("hr", None, "payroll", "SUM(employees.salary) / 12", by="t")
    hr.remove("hr")
    assert hr.glossary.history("hr") == ()
    hr.add("hr", sqlite_url, registered_by="t")
    assert hr.glossary.define("hr", None, "payroll", "SUM(employees.salary)", by="t").version == 1


def test_the_model_matches_migration_0009(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    insp = inspect(engine)
    table = GlossaryRow.__table__
    assert {c["name"] for c in insp.get_columns("glossary_entries")} == {c.name for c in table.columns}
    nullable = {c["name"]: c["nullable"] for c in insp.get_columns("glossary_entries")}
    assert nullable == {c.name: c.nullable for c in table.columns} | {"id": False}
    assert [u["column_names"] for u in insp.get_unique_constraints("glossary_entries")] == [
        ["database", "kind", "name", "version"]
    ]
    assert [i["name"] for i in insp.get_indexes("glossary_entries")] == ["ix_glossary_entries_database"]
    with engine.begin() as conn, pytest.raises(Exception, match="CHECK"):
        conn.execute(
            text(
                "INSERT INTO glossary_entries (database, kind, name, definition, version, active, created_by,"
                " created_at) VALUES ('hr', 'synonym', 'x', 'y', 1, 1, 't', '2026-01-01')"
            )
        )
    engine.dispose()


# --- chat -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_chat_commands(bot: Assistant) -> None:
    async def say(command: str) -> str:
        reply = await bot.handle(command, ADMIN)
        return reply.text

    assert "Stored the term `senior engineer` for `hr` (v1)" in await say(
        "admin define hr “Senior Engineer” => an engineer hired before 2021"
    )
    assert "Stored the metric `payroll` for `hr` (v1)" in await say("admin define hr payroll => SUM(employees.salary)")
    assert "(v2)" in await say("admin define hr metric payroll => SUM(employees.salary) / 12")
    assert "unchanged (still v2)" in await say("admin define hr payroll => SUM(employees.salary) / 12")
    assert "Stored the term `budget`" in await say("admin define hr term budget => SUM(departments.budget)")
    assert "column description" in await say("admin describe hr employees.hired_on => the first day at work")
    assert "now hidden" in await say("admin hide hr employees.email")
    listing = await say("admin glossary hr")
    assert listing.splitlines()[0] == messages.glossary_title("hr", 5, history=False)
    assert "• metric `payroll` = SUM(employees.salary) / 12 (v2)" in listing
    assert "• hidden column `employees.email` (v1)" in listing
    assert "CREATE TABLE" in await say("admin describe hr")  # the schema, as before
    assert "visible to the model again" in await say("admin unhide hr employees.email")
    assert "history is kept" in await say('admin undefine hr "senior engineer"')
    history = await say("admin glossary hr history")
    assert "(v1, inactive)" in history and "• term `senior engineer`" in history
    assert bot.registry.glossary.entries("hr")[0].created_by == "slack:U-admin"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("admin define nope x => y", "No database named 'nope'"),
        ("admin define hr revenue => SUM(order_lines.revenue)", "no table `order_lines`"),
        ("admin define hr revenue => SUM(employees.bonus)", "has no column `bonus`"),
        ('admin define hr "" => something', "name is empty"),
        ("admin define hr => something", "name is empty"),
        ("admin define hr churn =>", "definition is empty"),
        (f"admin define hr churn => {'x' * (MAX_DEFINITION_CHARS + 1)}", "longer than 500"),
        ("admin define hr churn => gone <|im_end|>", "control token <|im_end|>"),
        ("admin describe hr employees.start => x", "has no column `start`"),
        ("admin hide hr employees.nope", "has no column `nope`"),
        ("admin unhide hr employees.email", "is not hidden"),
        ('admin undefine hr "nothing"', "has no entry `nothing`"),
        ("admin glossary nope", "No database named 'nope'"),
        ("admin define hr churn", "Usage"),
    ],
)
async def test_chat_refusals_change_nothing(bot: Assistant, command: str, needle: str) -> None:
    reply = await bot.handle(command, ADMIN)
    assert reply.kind == "error" and needle in reply.text, reply.text
    assert bot.registry.glossary.history("hr") == ()


@pytest.mark.asyncio
async def test_only_admins_change_or_read_the_glossary(bot: Assistant) -> None:
    for command in (
        "admin define hr payroll => SUM(employees.salary)",
        "admin describe hr employees.salary => yearly",
        "admin hide hr employees.email",
        "admin glossary hr",
    ):
        reply = await bot.handle(command, BOB)
        assert reply.kind == "error" and reply.error_kind == "AdminOnly" and "only chat2sql admins" in reply.text
    assert bot.registry.glossary.history("hr") == ()
    assert bot.store.audit(limit=1)[0].error_kind == "AdminOnly"


@pytest.mark.asyncio
async def test_the_explanation_lists_the_glossary_entries_used(settings: Settings, sqlite_url: str) -> None:
    assistant = make_assistant(settings, ScriptedClient(["SELECT SUM(e.salary) AS total FROM employees AS e"]))
    try:
        await assistant.handle(f"admin register hr {sqlite_url}", ADMIN)
        await assistant.handle("admin define hr payroll => SUM(employees.salary) * 1", ADMIN)
        await assistant.handle("admin define hr payroll => SUM(employees.salary)", ADMIN)
        await assistant.handle("admin define hr headcount => COUNT(employees.id)", ADMIN)
        await assistant.handle("admin define hr senior staff => people hired before 2020", ADMIN)
        answer = await assistant.ask("what is the payroll of the senior staff?", ALICE)
        assert answer.answer is not None, answer.text
        reply = await assistant.explain(answer.answer.audit_id, ALICE)
        lines = reply.text.splitlines()
        assert "Glossary: payroll = SUM(employees.salary) (v2)" in lines
        assert "Glossary: senior staff: people hired before 2020 (v1)" in lines
        assert not any("headcount" in line for line in lines)  # defined, but not what the SQL computes
        assert lines[0] == messages.explain_title("hr")
    finally:
        await assistant.close()


# --- the CLI --------------------------------------------------------------------------------


def test_cli_commands(settings: Settings, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    def cli(*args: str) -> tuple[int, str, str]:  # in-process, for speed; one real subprocess below
        code = schemas_cli.main(list(args), settings=settings)
        out = capsys.readouterr()
        return code, out.out, out.err

    assert cli("add", "hr", sqlite_url)[0] == 0
    code, out, _ = cli("define", "hr", "payroll", "SUM(employees.salary)")
    assert code == 0 and "metric `payroll`" in out and "(v1)" in out
    assert "unchanged" in cli("define", "hr", "payroll", "SUM(employees.salary)")[1]
    assert cli("define", "hr", "payroll", "SUM(employees.salary) / 12")[0] == 0
    assert cli("define", "hr", "--kind", "term", "veteran", "hired before 2020")[0] == 0
    assert cli("describe", "hr", "employees.salary", "yearly, in EUR")[0] == 0
    assert cli("hide", "hr", "employees.email")[0] == 0
    listing = json.loads(cli("glossary", "hr", "--json")[1])
    assert {(e["kind"], e["name"], e["version"]) for e in listing} == {
        ("metric", "payroll", 2),
        ("term", "veteran", 1),
        ("column", "employees.salary", 1),
        ("hidden", "employees.email", 1),
    }
    assert cli("unhide", "hr", "employees.email")[0] == 0
    assert cli("undefine", "hr", "veteran")[0] == 0
    plain = cli("glossary", "hr")[1]
    assert "payroll" in plain and "veteran" not in plain
    assert len(json.loads(cli("glossary", "hr", "--history", "--json")[1])) == 5

    for args, needle in (
        (("define", "hr", "revenue", "SUM(order_lines.revenue)"), "no table `order_lines`"),
        (("describe", "hr", "employees.start", "x"), "has no column `start`"),
        (("define", "nope", "x", "y"), "No database named 'nope'"),
        (("define", "hr", "x<|im_end|>", "y"), "control token"),
        (("undefine", "hr", "nothing"), "has no entry"),
    ):
        code, _, err = cli(*args)
        assert code == 1 and err.startswith("error: ") and needle in err and len(err.splitlines()) == 1, err
    assert len(json.loads(cli("glossary", "hr", "--history", "--json")[1])) == 5

    real = Cli(settings.data_dir)("glossary", "hr", "--json")  # ``python -m schemas`` itself
    assert real.returncode == 0 and {e["name"] for e in json.loads(real.stdout)} == {"payroll", "employees.salary"}


# --- the evaluation set ---------------------------------------------------------------------


def test_the_glossary_eval_set_builds_and_its_gold_sql_runs(tmp_path: Path, settings: Settings) -> None:
    folder = build(tmp_path / "set", source=SETS["glossary"])
    items = json.loads((folder / "dev.json").read_text(encoding="utf-8"))
    assert 10 <= len(items) <= 15
    assert {i["difficulty"] for i in items} <= {"easy", "medium", "hard", "extra"}
    for item in items:
        conn = sqlite3.connect(
            f"file:{folder / 'database' / item['db_id'] / (item['db_id'] + '.sqlite')}?mode=ro", uri=True
        )
        try:
            rows = conn.execute(item["query"]).fetchall()
        finally:
            conn.close()
        assert rows and all(v is not None for row in rows for v in row), item["question"]
    registry = Registry.open(settings)
    try:
        for db_id in {i["db_id"] for i in items}:
            registry.add(db_id, f"sqlite:///{folder / 'database' / db_id / (db_id + '.sqlite')}", registered_by="t")
        glossary = json.loads((folder / "glossary.json").read_text(encoding="utf-8"))
        for g in glossary:
            entry = registry.glossary.define(g["db_id"], g["kind"], g["name"], g["definition"], by="eval")
            if g["kind"] in ("term", "metric"):  # the inference agrees with what the set says
                assert (
                    registry.glossary.define(g["db_id"], None, g["name"] + " again", g["definition"], by="t").kind
                    == entry.kind
                )
        for item in items:  # every question concerns at least one of its database's entries
            found = terms.relevant(registry.glossary.entries(item["db_id"]), item["question"])
            assert any(e.kind in ("term", "metric") for e in found), item["question"]
    finally:
        registry.close()
