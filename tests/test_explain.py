"""Explanations read off the parsed SQL: joins, filters, grouping, CTEs, subqueries, windows,
set operations, in each dialect; and the access check of the Explain button."""

from __future__ import annotations

import pytest

from bot.core.assistant import Assistant
from bot.core.explain import explain_sql
from chat2sql import messages
from tests.support.assistant import ADMIN, ALICE, OTHER_WS

# (dialect, SQL, phrases the explanation must contain, in this order)
CASES = [
    (
        "sqlite",
        "SELECT d.name, COUNT(*) AS n FROM employees AS e JOIN departments AS d ON e.department_id = d.id "
        "WHERE e.salary > 50000 GROUP BY d.name HAVING COUNT(*) > 1 ORDER BY n DESC LIMIT 10",
        [
            "Reads from employees (as e).",
            "Joins departments (as d), matching rows where e.department_id equals d.id.",
            "Keeps only rows where e.salary is greater than 50000.",
            "Groups the rows by d.name, one result row per group.",
            "Keeps only groups where the number of rows is greater than 1.",
            "Returns d.name; the number of rows (as n).",
            "Sorts by n (highest first).",
            "Returns at most 10 rows.",
        ],
    ),
    (
        "postgres",
        "WITH recent AS (SELECT * FROM employees WHERE hired_on >= '2022-01-01') "
        "SELECT name, ROW_NUMBER() OVER (PARTITION BY department_id ORDER BY salary DESC) AS rn FROM recent",
        [
            "First defines recent as a query that:",
            "  Reads from employees.",
            "  Keeps only rows where hired_on is at least '2022-01-01'.",
            "Reads from recent.",
            "the row number, computed within each department_id in order of salary (highest first) (as rn)",
        ],
    ),
    (
        "mysql",
        "SELECT name FROM employees WHERE department_id IN (SELECT id FROM departments WHERE budget > 100000) "
        "AND NOT EXISTS (SELECT 1 FROM employees AS m WHERE m.manager_id = employees.id) "
        "AND email IS NOT NULL AND name NOT LIKE 'A%' AND salary BETWEEN 1000 AND 2000 LIMIT 3, 10",
        [
            "Keeps only rows where all of these hold:",
            "- department_id is one of the values returned by subquery 1",
            "- no row exists in subquery 2",
            "- email is not empty (NULL)",
            "- name does not match the pattern 'A%'",
            "- salary is between 1000 and 2000",
            "Returns at most 10 rows, skipping the first 3.",
            "Subquery 1:",
            "  Keeps only rows where budget is greater than 100000.",
            "Subquery 2:",
            "  Reads from employees (as m).",
        ],
    ),
    (
        "sqlite",
        "SELECT name FROM employees UNION ALL SELECT name FROM departments ORDER BY 1 LIMIT 5",
        [
            "UNION ALL: rows from either, duplicates kept",
            "The first query:",
            "  Reads from employees.",
            "The second query:",
            "  Reads from departments.",
            "Sorts by column 1 (lowest first).",
        ],
    ),
    (
        "postgres",
        "SELECT DISTINCT x.name FROM (SELECT name, department_id FROM employees) AS x "
        "LEFT JOIN departments AS d ON d.id = x.department_id CROSS JOIN audit_log "
        "WHERE d.name ILIKE 'eng%' OR d.budget IS NULL",
        [
            "Reads from a subquery (as x); the subquery:",
            "  Returns name; department_id.",
            "Left-joins departments (as d), matching rows where d.id equals x.department_id; rows of the tables",
            "Pairs every row with every row of audit_log (a cross join).",
            "Keeps only rows where d.name matches the pattern 'eng%' (ignoring case) or d.budget is empty (NULL).",
            "Returns x.name, without duplicate rows.",
        ],
    ),
    (
        "sqlite",
        'SELECT SUM("Quantity" * "Unit Price") AS revenue, AVG("Quantity"), COUNT(DISTINCT "Employee") '
        "FROM \"Order Details\" WHERE \"select\" IN ('gold', 'silver')",
        [
            'Reads from "Order Details".',
            "Keeps only rows where \"select\" is one of 'gold', 'silver'.",
            "Summarizes all of these rows into one result row.",
            'the total of "Quantity" * "Unit Price" (as revenue); the average of "Quantity"; '
            'the number of distinct "Employee"',
        ],
    ),
    (
        "mysql",
        "SELECT `e`.`name`, `d`.`name` FROM `employees` AS `e` INNER JOIN `departments` AS `d` USING (`id`)",
        ["Joins `departments` (as d), matching rows on equal `id`.", "Returns `e`.`name`; `d`.`name`."],
    ),
]


@pytest.mark.parametrize(("dialect", "sql", "phrases"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_explanations_name_every_part_in_order(dialect: str, sql: str, phrases: list[str]) -> None:
    text = explain_sql(sql, dialect=dialect)
    position = 0
    for phrase in phrases:
        found = text.find(phrase, position)
        assert found >= 0, f"{phrase!r} not found after position {position} in:\n{text}"
        position = found + len(phrase)
    assert explain_sql(sql, dialect=dialect) == text  # deterministic


def test_every_literal_and_column_of_the_query_is_in_the_explanation() -> None:
    """Faithful: nothing of the WHERE clause is paraphrased away."""
    sql = "SELECT name FROM employees WHERE salary >= 75000 AND hired_on < '2023-01-01' AND department_id <> 3"
    text = explain_sql(sql, dialect="sqlite")
    for part in ("salary", "75000", "hired_on", "'2023-01-01'", "department_id", "3"):
        assert part in text
    assert "is at least" in text and "is less than" in text and "does not equal" in text


def test_unknown_shapes_are_quoted_as_sql_and_non_queries_refused() -> None:
    text = explain_sql("SELECT CASE WHEN salary > 1 THEN 'hi' ELSE 'lo' END AS band FROM employees", dialect="sqlite")
    assert "CASE WHEN salary > 1 THEN 'hi' ELSE 'lo' END (as band)" in text
    assert explain_sql("DELETE FROM employees", dialect="sqlite") == messages.EXPLAIN_UNREADABLE
    assert explain_sql("SELEC name FROM", dialect="postgres") == messages.EXPLAIN_UNREADABLE
    assert explain_sql("SELECT 1; SELECT 2", dialect="sqlite") == messages.EXPLAIN_UNREADABLE
    assert explain_sql("SELECT 1", dialect="sqlite").startswith("Reads no table")


def test_very_long_queries_are_cut_with_a_note() -> None:
    ctes = ", ".join(f"c{i} AS (SELECT {i} AS v FROM employees WHERE id > {i})" for i in range(40))
    text = explain_sql(f"WITH {ctes} SELECT v FROM c0", dialect="sqlite")
    assert text.splitlines()[-1] == messages.EXPLAIN_CUT and len(text.splitlines()) <= 80


@pytest.mark.asyncio
async def test_explain_checks_access_like_a_preview(bot: Assistant) -> None:
    answer = await bot.ask("who works here?", ALICE)
    assert answer.answer is not None
    reply = await bot.explain(answer.answer.audit_id, ALICE)
    assert reply.kind == "text" and reply.text.splitlines()[0] == messages.explain_title("hr")
    assert "Reads from employees." in reply.text and "Sorts by id (lowest first)." in reply.text
    assert len(bot._s.client.requests) == 1  # type: ignore[attr-defined]  # never asks the model

    elsewhere = await bot.explain(answer.answer.audit_id, OTHER_WS)
    assert elsewhere.kind == "error" and elsewhere.error_kind == "NotAllowedHere" and "hr" in elsewhere.text
    gone = await bot.explain(999_999, ALICE)
    assert gone.kind == "error" and gone.text == messages.EXPLAIN_GONE
    await bot.handle("admin remove hr", ADMIN)
    removed = await bot.explain(answer.answer.audit_id, ALICE)
    assert removed.kind == "error" and removed.error_kind == "UnknownDatabase"
