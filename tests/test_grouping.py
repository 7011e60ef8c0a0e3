"""Grouping repairs: aggregating SELECTs without GROUP BY, grouped by their plain items."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from schemas.grouping import asks_per_group, regrouped
from tests.support.databases import make_sqlite, sample_script


@pytest.mark.parametrize(
    ("sql", "expected", "note"),
    [
        (
            "SELECT department_id, COUNT(*) FROM employees",
            "SELECT department_id, COUNT(*) FROM employees GROUP BY department_id",
            "grouped by department_id: the aggregate ran over all rows",
        ),
        (  # the aggregate only in ORDER BY: "the department with the most employees"
            "SELECT department_id FROM employees ORDER BY COUNT(*) DESC LIMIT 1",
            "SELECT department_id FROM employees GROUP BY department_id ORDER BY COUNT(*) DESC LIMIT 1",
            "grouped by department_id",
        ),
        (  # a count compared with a number: HAVING
            "SELECT department_id FROM employees WHERE COUNT(*) >= 2 AND salary > 1",
            "SELECT department_id FROM employees WHERE salary > 1 GROUP BY department_id HAVING COUNT(*) >= 2",
            "moved from WHERE to HAVING",
        ),
        (  # a column compared with an aggregate: the aggregate of all rows
            "SELECT name FROM employees WHERE salary > AVG(salary)",
            "SELECT name FROM employees WHERE salary > (SELECT AVG(salary) FROM employees)",
            "computed over all rows in a subquery",
        ),
        (  # joined: the subquery reads the same tables, the grouping keys keep their qualifiers
            "SELECT d.name, SUM(e.salary) FROM employees AS e JOIN departments AS d ON e.department_id = d.id",
            "SELECT d.name, SUM(e.salary) FROM employees AS e JOIN departments AS d ON e.department_id = d.id"
            " GROUP BY d.name",
            "grouped by d.name",
        ),
        (  # inside a subquery only
            "SELECT name FROM departments WHERE id IN (SELECT department_id FROM employees ORDER BY COUNT(*) LIMIT 1)",
            "SELECT name FROM departments WHERE id IN (SELECT department_id FROM employees GROUP BY department_id"
            " ORDER BY COUNT(*) LIMIT 1)",
            "grouped by department_id",
        ),
    ],
)
def test_ungrouped_aggregates_are_grouped(sql: str, expected: str, note: str) -> None:
    mended = regrouped(sql, "sqlite")
    assert mended is not None and mended.sql == expected
    assert any(note in n for n in mended.notes)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name, MAX(salary) FROM employees",  # the row of the extreme: SQLite's reading
        "SELECT department_id, COUNT(*) FROM employees GROUP BY department_id",
        "SELECT COUNT(*), AVG(salary) FROM employees",
        "SELECT *, COUNT(*) FROM employees",
        "SELECT name, SUM(salary) OVER (PARTITION BY department_id) FROM employees",
        "SELECT name, COUNT(*) FILTER (WHERE salary > 1) OVER () FROM employees",  # a window too
        "SELECT e.*, COUNT(*) FROM employees AS e",  # no grouping key to name
        "SELECT name FROM employees WHERE COUNT(*) > 1 OR salary > 1",  # no safe reading
        "SELECT name FROM employees WHERE salary > (SELECT AVG(salary) FROM employees)",
        "not sql at all (",
    ],
)
def test_what_needs_no_grouping_is_left_alone(sql: str) -> None:
    assert regrouped(sql, "sqlite") is None


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_grouping_in_each_dialect(dialect: str) -> None:
    quote = '"' if dialect == "postgres" else "`"
    mended = regrouped(f"SELECT {quote}Employee{quote}, COUNT(*) FROM {quote}Order Details{quote}", dialect)  # type: ignore[arg-type]
    assert mended is not None
    assert mended.sql.endswith(f"GROUP BY {quote}Employee{quote}")


def test_grouped_queries_run_and_answer_per_group(tmp_path: Path) -> None:
    url = make_sqlite(tmp_path / "sample.db", sample_script("sqlite"))
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        ungrouped = "SELECT department_id, COUNT(*) FROM employees WHERE department_id IS NOT NULL"
        assert len(conn.execute(ungrouped).fetchall()) == 1  # one arbitrary department, everyone counted
        mended = regrouped(ungrouped, "sqlite")
        assert mended is not None
        assert sorted(conn.execute(mended.sql).fetchall()) == [(1, 2), (2, 2), (3, 2)]
        below = regrouped("SELECT name FROM employees WHERE salary < AVG(salary)", "sqlite")
        assert below is not None
        assert {r[0] for r in conn.execute(below.sql)} == {"Chen", "Dee", "Émile", "Fay", "Gus"}
    finally:
        conn.close()


def test_extremes_are_grouped_only_when_the_question_asks_per_group() -> None:
    sql = "SELECT department_id, MAX(salary) FROM employees"
    assert regrouped(sql, "sqlite") is None  # "who earns the most": the row of the extreme
    mended = regrouped(sql, "sqlite", per_group=True)
    assert mended is not None and mended.sql == f"{sql} GROUP BY department_id"
    assert asks_per_group("What is the top salary in each department?")
    assert asks_per_group("Highest salary per department")
    assert not asks_per_group("Which department pays the most?")
