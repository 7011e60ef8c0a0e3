"""The sample databases: reproducible, consistent, registered once, and good for the seed questions.

The seed questions run the way the bot runs them: canonical SQL through the guard and a
read-only preview of the registered database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import samples
from chat2sql.settings import Settings
from samples import SAMPLE_DESCRIPTIONS, SAMPLE_SEEDS, SAMPLES, build_sample, ensure_samples
from schemas.preview import ReadOnlyRunner, run_checked
from schemas.registry import Registry

TODAY = dt.date(2026, 3, 18)
LAST_MONTH = ("2026-02-01", "2026-03-01")  # [first day, first day of TODAY's month)
TWO_YEARS_BEFORE = "2024-04-01"  # first day of the oldest month of e-commerce orders

ROW_COUNTS: dict[str, dict[str, tuple[int, int]]] = {
    "sales_db": {
        "regions": (5, 5),
        "sales_reps": (20, 40),
        "customers": (1_000, 2_000),
        "sales": (3_000, 8_000),
    },
    "ecommerce_db": {
        "categories": (6, 12),
        "products": (40, 100),
        "customers": (1_000, 3_000),
        "orders": (4_000, 10_000),
        "order_items": (8_000, 20_000),
    },
    "hr_db": {
        "departments": (8, 15),
        "employees": (1_000, 3_000),
        "salary_history": (5_000, 30_000),
    },
}
CHILD_TABLES = {
    "sales_db": {"sales_reps", "customers", "sales"},
    "ecommerce_db": {"products", "orders", "order_items"},
    "hr_db": {"employees", "salary_history"},
}
DATE_COLUMNS = {
    "sales_db": [("sales_reps", "hire_date"), ("customers", "signup_date"), ("sales", "sale_date")],
    "ecommerce_db": [("customers", "signup_date"), ("orders", "order_date")],
    "hr_db": [("employees", "hire_date"), ("salary_history", "effective_date")],
}
MONEY_COLUMNS = {
    "sales_db": [("sales", "amount")],
    "ecommerce_db": [("products", "price"), ("order_items", "unit_price")],
    "hr_db": [("employees", "salary"), ("salary_history", "salary")],
}

TOP_PRODUCTS_SQL = """
SELECT p.name, SUM(oi.quantity * oi.unit_price) AS revenue
FROM order_items AS oi
JOIN orders AS o ON o.order_id = oi.order_id
JOIN products AS p ON p.product_id = oi.product_id
WHERE o.order_date >= {start} AND o.order_date < {end} {extra}
GROUP BY p.product_id, p.name
ORDER BY revenue DESC
LIMIT {limit}
"""


def checksum(path: Path) -> str:
    """A digest of the canonical SQL dump: the content, not the file's bytes."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def query(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("samples")
    return {name: build_sample(name, folder / f"{name}.sqlite", today=TODAY) for name in SAMPLES}


@pytest.fixture
def demo(registry: Registry, settings: Settings) -> Registry:
    assert ensure_samples(registry, settings.data_dir, today=TODAY) == list(SAMPLES)
    return registry


def ask(registry: Registry, name: str, sql: str) -> dict[str, Any]:
    """Guard and preview ``sql`` on a registered sample, the way the bot does."""
    entry = registry.get(name)
    runner = ReadOnlyRunner(url=registry.connection_url(name))
    try:
        result = run_checked(sql, entry.schema, runner, max_rows=50, timeout_s=5)
    finally:
        runner.close()
    assert result["ok"], result
    return result


# --- determinism ------------------------------------------------------------------------


def test_the_api_names_three_samples() -> None:
    assert SAMPLES == ("sales_db", "ecommerce_db", "hr_db")
    assert set(SAMPLE_DESCRIPTIONS) == set(SAMPLES)
    assert all(SAMPLE_DESCRIPTIONS[name] for name in SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_same_today_gives_the_same_content(name: str, tmp_path: Path, built: dict[str, Path]) -> None:
    again = build_sample(name, tmp_path / "again.sqlite", today=TODAY)
    assert checksum(again) == checksum(built[name])


def test_another_process_builds_the_same_content(tmp_path: Path, built: dict[str, Path]) -> None:
    # A different hash seed would reorder any iteration over a set of strings.
    script = (
        "import datetime, pathlib, sys; from samples import SAMPLES, build_sample\n"
        "for name in SAMPLES:\n"
        "    build_sample(name, pathlib.Path(sys.argv[1]) / name, today=datetime.date.fromisoformat(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    cwd = Path(__file__).parent.parent
    subprocess.run([sys.executable, "-c", script, str(tmp_path), TODAY.isoformat()], check=True, env=env, cwd=cwd)
    assert {name: checksum(tmp_path / name) for name in SAMPLES} == {
        name: checksum(path) for name, path in built.items()
    }


@pytest.mark.parametrize("name", SAMPLES)
def test_dates_follow_today(name: str, tmp_path: Path, built: dict[str, Path]) -> None:
    later = build_sample(name, tmp_path / "later.sqlite", today=dt.date(2026, 9, 2))
    assert checksum(later) != checksum(built[name])


def test_each_sample_has_its_own_seed() -> None:
    assert len(set(SAMPLE_SEEDS.values())) == len(SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_the_seed_drives_the_content(
    name: str, tmp_path: Path, built: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SAMPLE_SEEDS, name, SAMPLE_SEEDS[name] + 1)
    other = build_sample(name, tmp_path / "other.sqlite", today=TODAY)
    assert checksum(other) != checksum(built[name])


# --- content ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_row_counts(name: str, built: dict[str, Path]) -> None:
    tables = {row[0] for row in query(built[name], "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(ROW_COUNTS[name])
    for table, (low, high) in ROW_COUNTS[name].items():
        (count,) = query(built[name], f"SELECT COUNT(*) FROM {table}")[0]
        assert low <= count <= high, (table, count)


@pytest.mark.parametrize("name", SAMPLES)
def test_foreign_keys_are_declared_and_consistent(name: str, built: dict[str, Path]) -> None:
    path = built[name]
    children = {
        table
        for (table,) in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")
        if query(path, f"PRAGMA foreign_key_list({table})")
    }
    assert children == CHILD_TABLES[name]
    assert query(path, "PRAGMA foreign_key_check") == []
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("name", SAMPLES)
def test_dates_are_iso_and_not_in_the_future(name: str, built: dict[str, Path]) -> None:
    for table, column in DATE_COLUMNS[name]:
        bad = query(
            built[name],
            f"SELECT COUNT(*) FROM {table} WHERE date({column}) IS NOT {column} OR {column} > ?",
            TODAY.isoformat(),
        )
        assert bad == [(0,)], (table, column)


@pytest.mark.parametrize("name", SAMPLES)
def test_money_is_real_with_cents(name: str, built: dict[str, Path]) -> None:
    for table, column in MONEY_COLUMNS[name]:
        bad = query(
            built[name],
            f"SELECT COUNT(*) FROM {table} WHERE typeof({column}) != 'real' OR round({column}, 2) != {column}"
            f" OR {column} <= 0",
        )
        assert bad == [(0,)], (table, column)


def test_customers_come_from_many_countries_unevenly(built: dict[str, Path]) -> None:
    counts = [n for _, n in query(built["sales_db"], "SELECT country, COUNT(*) FROM customers GROUP BY 1")]
    assert 15 <= len(counts) <= 25
    assert max(counts) >= 10 * min(counts)


def test_orders_span_two_years_up_to_today(built: dict[str, Path]) -> None:
    first, last = query(built["ecommerce_db"], "SELECT MIN(order_date), MAX(order_date) FROM orders")[0]
    assert TWO_YEARS_BEFORE <= first < "2024-04-08"
    assert "2026-03-10" <= last <= TODAY.isoformat()
    ((in_last_month,),) = query(
        built["ecommerce_db"],
        "SELECT COUNT(*) FROM orders WHERE order_date >= ? AND order_date < ?",
        *LAST_MONTH,
    )
    assert in_last_month >= 200


def test_employees_are_hired_since_2010_and_report_to_earlier_hires(built: dict[str, Path]) -> None:
    path = built["hr_db"]
    assert query(path, "SELECT MIN(hire_date) >= '2010-01-01' FROM employees") == [(1,)]
    assert query(path, "SELECT COUNT(*) FROM employees WHERE manager_id IS NULL") == [(1,)]
    assert query(path, "SELECT COUNT(*) FROM employees WHERE manager_id >= employee_id") == [(0,)]
    departments = {name for (name,) in query(path, "SELECT name FROM departments")}
    assert {"Engineering", "Sales", "Marketing", "Finance", "HR", "Support"} <= departments


def test_salary_history_ends_at_the_current_salary(built: dict[str, Path]) -> None:
    mismatched = query(
        built["hr_db"],
        """SELECT COUNT(*) FROM employees AS e
           WHERE e.salary != (SELECT h.salary FROM salary_history AS h WHERE h.employee_id = e.employee_id
                              ORDER BY h.effective_date DESC LIMIT 1)
              OR e.hire_date != (SELECT MIN(h.effective_date) FROM salary_history AS h
                                 WHERE h.employee_id = e.employee_id)""",
    )
    assert mismatched == [(0,)]


# --- writing ----------------------------------------------------------------------------


def test_an_unknown_sample_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sample database 'chinook'"):
        build_sample("chinook", tmp_path / "chinook.sqlite", today=TODAY)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_build_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = build_sample("sales_db", tmp_path / "sales_db.sqlite", today=TODAY)
    before = checksum(path)

    def broken(conn: sqlite3.Connection, rng: object, today: dt.date) -> None:
        conn.execute("CREATE TABLE half_built (id INTEGER PRIMARY KEY)")
        raise RuntimeError("disk full")

    monkeypatch.setitem(samples._BUILDERS, "sales_db", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_sample("sales_db", path, today=TODAY)
    assert checksum(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["sales_db.sqlite"]


def test_a_build_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "hr_db.sqlite"
    build_sample("hr_db", path, today=dt.date(2025, 1, 1))
    build_sample("hr_db", path, today=TODAY)
    assert checksum(path) == checksum(build_sample("hr_db", tmp_path / "fresh.sqlite", today=TODAY))
    assert sorted(p.name for p in path.parent.iterdir()) == ["hr_db.sqlite"]


# --- ensure_samples ---------------------------------------------------------------------


def snapshot(registry: Registry, folder: Path) -> tuple[object, ...]:
    entries = [entry.to_json() for entry in registry.list()]
    files = {p.name: (p.stat().st_mtime_ns, checksum(p)) for p in sorted(folder.iterdir())}
    return entries, files


def test_ensure_samples_builds_and_registers_all(demo: Registry, settings: Settings) -> None:
    folder = (settings.data_dir / "samples").resolve()
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.sqlite" for name in SAMPLES)
    assert demo.names() == tuple(sorted(SAMPLES))
    for name in SAMPLES:
        entry = demo.get(name)
        assert demo.connection_url(name) == f"sqlite:///{folder / f'{name}.sqlite'}"
        assert (entry.dialect, entry.description, entry.registered_by) == (
            "sqlite",
            SAMPLE_DESCRIPTIONS[name],
            "demo",
        )
        assert {t.name for t in entry.schema.tables} == set(ROW_COUNTS[name])


def test_ensure_samples_twice_changes_nothing(demo: Registry, settings: Settings) -> None:
    folder = settings.data_dir / "samples"
    before = snapshot(demo, folder)
    assert ensure_samples(demo, settings.data_dir, today=dt.date(2026, 8, 1)) == []
    assert snapshot(demo, folder) == before


def test_a_deleted_sample_file_is_rebuilt(demo: Registry, settings: Settings) -> None:
    path = settings.data_dir / "samples" / "hr_db.sqlite"
    expected = checksum(path)
    registered_at = demo.get("hr_db").registered_at
    path.unlink()
    assert ensure_samples(demo, settings.data_dir, today=TODAY) == ["hr_db"]
    assert checksum(path) == expected
    assert demo.get("hr_db").registered_at == registered_at
    assert ask(demo, "hr_db", "SELECT COUNT(*) FROM employees")["rows"][0][0] >= 1_000


def test_an_unregistered_sample_is_registered_without_a_rebuild(demo: Registry, settings: Settings) -> None:
    path = settings.data_dir / "samples" / "sales_db.sqlite"
    mtime = path.stat().st_mtime_ns
    demo.remove("sales_db")
    assert ensure_samples(demo, settings.data_dir, registered_by="admin") == ["sales_db"]
    assert path.stat().st_mtime_ns == mtime
    assert demo.get("sales_db").registered_by == "admin"


def test_a_name_registered_elsewhere_is_left_alone(registry: Registry, settings: Settings, sqlite_url: str) -> None:
    registry.add("sales_db", sqlite_url, description="the real one", registered_by="admin")
    assert ensure_samples(registry, settings.data_dir, today=TODAY) == list(SAMPLES)
    assert registry.connection_url("sales_db") == sqlite_url
    assert registry.get("sales_db").description == "the real one"


# --- the seed questions -----------------------------------------------------------------


def test_how_many_customers_in_each_country(demo: Registry) -> None:
    # "How many customers do we have in each country?"
    result = ask(
        demo,
        "sales_db",
        "SELECT country, COUNT(*) AS customers FROM customers GROUP BY country ORDER BY customers DESC",
    )
    (total,) = ask(demo, "sales_db", "SELECT COUNT(*) FROM customers")["rows"][0]
    counts = [row[1] for row in result["rows"]]
    assert not result["truncated"]
    assert len(counts) >= 15
    assert counts == sorted(counts, reverse=True)
    assert sum(counts) == total
    assert result["rows"][0][0] == "United States"


def top_products(registry: Registry, *, start: str, end: str, extra: str = "", limit: int = 5) -> list[Any]:
    sql = TOP_PRODUCTS_SQL.format(start=start, end=end, extra=extra, limit=limit)
    return list(ask(registry, "ecommerce_db", sql)["rows"])


def test_top_5_products_by_revenue_last_month(demo: Registry) -> None:
    # "Show me the top 5 products by revenue last month"
    start, end = (f"'{d}'" for d in LAST_MONTH)
    rows = top_products(demo, start=start, end=end)
    assert len(rows) == 5
    revenues = [revenue for _, revenue in rows]
    assert len(set(revenues)) == 5
    assert revenues == sorted(revenues, reverse=True)
    # A clear answer: each place is at least 5% ahead of the next, the 6th product included,
    # and leaving out cancelled and returned orders does not change the five.
    with_sixth = [revenue for _, revenue in top_products(demo, start=start, end=end, limit=6)]
    assert all(a >= 1.05 * b for a, b in itertools.pairwise(with_sixth))
    kept = top_products(demo, start=start, end=end, extra="AND o.status NOT IN ('cancelled', 'returned')")
    assert [name for name, _ in kept] == [name for name, _ in rows]


def test_last_months_top_5_is_the_same_whatever_today_is(registry: Registry, settings: Settings) -> None:
    # Built for the real date, asked the way a model writes it: SQLite's date('now').
    ensure_samples(registry, settings.data_dir, today=dt.datetime.now(dt.UTC).date())
    rows = top_products(
        registry,
        start="date('now', 'start of month', '-1 month')",
        end="date('now', 'start of month')",
    )
    fixed = build_sample("ecommerce_db", settings.data_dir / "fixed.sqlite", today=TODAY)
    start, end = LAST_MONTH
    expected = query(fixed, TOP_PRODUCTS_SQL.format(start="?", end="?", extra="", limit=5), start, end)
    assert [name for name, _ in rows] == [name for name, _ in expected]


def test_engineering_hires_after_2020(demo: Registry) -> None:
    # "List all employees hired after 2020 who are in the engineering department"
    result = ask(
        demo,
        "hr_db",
        """SELECT e.first_name, e.last_name, e.title, e.hire_date, d.name AS department
           FROM employees AS e JOIN departments AS d ON d.department_id = e.department_id
           WHERE d.name = 'Engineering' AND e.hire_date > '2020-12-31'
           ORDER BY e.hire_date""",
    )
    assert result["rows"]
    assert {row[4] for row in result["rows"]} == {"Engineering"}
    assert all(row[3] >= "2021-01-01" for row in result["rows"])
    (count,) = ask(
        demo,
        "hr_db",
        """SELECT COUNT(*) FROM employees AS e JOIN departments AS d ON d.department_id = e.department_id
           WHERE d.name = 'Engineering' AND e.hire_date >= '2021-01-01'""",
    )["rows"][0]
    assert count >= 24  # dozens
