"""``hr_db``: departments, employees with titles, managers and salaries, and every raise since hiring."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from datetime import date

from samples.common import Row, anniversary, day_in, email_address, insert, person, quotas

_HR_EMPLOYEES = 1_800
_FOUNDED = date(2010, 1, 4)
_TEAM_SIZE = 9  # individual contributors per manager
_RAISE_PER_YEAR = 1.035


@dataclass(frozen=True)
class _Department:
    name: str
    location: str
    weight: float
    head: str
    manager: str
    # title, salary low, salary high, relative frequency
    titles: tuple[tuple[str, int, int, int], ...]


_DEPARTMENTS = (
    _Department("Engineering", "San Francisco", 30, "VP of Engineering", "Engineering Manager", (
        ("Software Engineer", 95_000, 140_000, 40), ("Senior Software Engineer", 130_000, 185_000, 30),
        ("Staff Software Engineer", 170_000, 230_000, 8), ("QA Engineer", 75_000, 115_000, 10),
        ("Site Reliability Engineer", 115_000, 170_000, 12),
    )),
    _Department("Sales", "New York", 18, "VP of Sales", "Sales Manager", (
        ("Account Executive", 70_000, 120_000, 45), ("Sales Development Representative", 50_000, 70_000, 35),
        ("Enterprise Account Executive", 110_000, 160_000, 20),
    )),
    _Department("Support", "Austin", 14, "Director of Support", "Support Team Lead", (
        ("Support Specialist", 45_000, 65_000, 60), ("Senior Support Specialist", 60_000, 80_000, 30),
        ("Support Engineer", 75_000, 100_000, 10),
    )),
    _Department("Marketing", "New York", 8, "VP of Marketing", "Marketing Manager", (
        ("Marketing Specialist", 60_000, 85_000, 40), ("Content Strategist", 65_000, 90_000, 25),
        ("Product Marketing Manager", 100_000, 140_000, 20), ("Growth Analyst", 75_000, 105_000, 15),
    )),
    _Department("Operations", "Chicago", 7, "Director of Operations", "Operations Manager", (
        ("Operations Analyst", 60_000, 85_000, 50), ("Facilities Coordinator", 45_000, 60_000, 25),
        ("IT Specialist", 60_000, 90_000, 25),
    )),
    _Department("Product", "San Francisco", 6, "VP of Product", "Group Product Manager", (
        ("Product Manager", 120_000, 165_000, 50), ("Senior Product Manager", 150_000, 195_000, 25),
        ("Product Designer", 100_000, 150_000, 25),
    )),
    _Department("Data", "San Francisco", 5, "Head of Data", "Data Science Manager", (
        ("Data Analyst", 75_000, 110_000, 45), ("Data Scientist", 115_000, 165_000, 35),
        ("Analytics Engineer", 110_000, 160_000, 20),
    )),
    _Department("Finance", "Chicago", 5, "Chief Financial Officer", "Finance Manager", (
        ("Financial Analyst", 70_000, 100_000, 50), ("Accountant", 60_000, 85_000, 35),
        ("Controller", 110_000, 150_000, 15),
    )),
    _Department("HR", "Austin", 4, "VP of People", "HR Manager", (
        ("HR Generalist", 55_000, 80_000, 45), ("Recruiter", 60_000, 90_000, 40),
        ("HR Business Partner", 85_000, 120_000, 15),
    )),
    _Department("Legal", "New York", 2, "General Counsel", "Legal Manager", (
        ("Corporate Counsel", 140_000, 200_000, 50), ("Paralegal", 55_000, 80_000, 50),
    )),
)  # fmt: skip
_EXECUTIVE = _Department("Executive", "San Francisco", 0, "Chief Executive Officer", "", ())
_CEO, _HEAD, _MANAGER, _STAFF = range(4)  # levels, highest first

_HR_DDL = """
CREATE TABLE departments (
    department_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    location TEXT NOT NULL
);
CREATE TABLE employees (
    employee_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    department_id INTEGER NOT NULL REFERENCES departments (department_id),
    title TEXT NOT NULL,
    hire_date TEXT NOT NULL,
    salary REAL NOT NULL CHECK (salary > 0),
    manager_id INTEGER REFERENCES employees (employee_id)
);
CREATE TABLE salary_history (
    salary_history_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    effective_date TEXT NOT NULL,
    salary REAL NOT NULL CHECK (salary > 0),
    UNIQUE (employee_id, effective_date)
);
CREATE INDEX idx_employees_department ON employees (department_id);
CREATE INDEX idx_employees_manager ON employees (manager_id);
CREATE INDEX idx_employees_hire_date ON employees (hire_date);
"""


@dataclass(frozen=True)
class _Hire:
    department_id: int
    level: int
    title: str
    hired: date
    salary: float


def build(conn: sqlite3.Connection, rng: random.Random, today: date) -> None:
    conn.executescript(_HR_DDL)
    departments = (_EXECUTIVE, *_DEPARTMENTS)
    insert(conn, "departments", [(i, d.name, d.location) for i, d in enumerate(departments, 1)])
    hires = sorted(_hr_hires(rng, today), key=lambda h: (h.hired, h.level))
    managers = _hr_managers(rng, hires)
    seen: dict[str, int] = {}
    employees: list[Row] = []
    for employee_id, (hire, manager_id) in enumerate(zip(hires, managers, strict=True), 1):
        first, last = person(rng)
        email = email_address(first, last, "corp.example.com", seen)
        row = (first, last, email, hire.department_id, hire.title, hire.hired.isoformat(), hire.salary)
        employees.append((employee_id, *row, manager_id))
    insert(conn, "employees", employees)
    history = [
        (employee_id, day.isoformat(), salary)
        for employee_id, hire in enumerate(hires, 1)
        for day, salary in _salary_steps(hire, today)
    ]
    insert(conn, "salary_history", [(i, *entry) for i, entry in enumerate(history, 1)])


def _hr_hires(rng: random.Random, today: date) -> list[_Hire]:
    """The CEO, then per department a head, managers and staff; hiring speeds up over the years."""
    hires = [_Hire(department_id=1, level=_CEO, title=_EXECUTIVE.head, hired=_FOUNDED, salary=350_000.0)]
    counts = quotas([d.weight for d in _DEPARTMENTS], _HR_EMPLOYEES - 1)
    for department_id, (dept, count) in enumerate(zip(_DEPARTMENTS, counts, strict=True), 2):
        early = day_in(_FOUNDED, anniversary(_FOUNDED, 2), rng.random())
        hires.append(_Hire(department_id, _HEAD, dept.head, early, _salary(rng, 190_000, 280_000)))
        managers = max(1, (count - 1) // (_TEAM_SIZE + 1))
        for _ in range(managers):
            hired = day_in(early, today, rng.random() ** 1.5)  # most joined early, after the head
            hires.append(_Hire(department_id, _MANAGER, dept.manager, hired, _salary(rng, 120_000, 190_000)))
        titles, weights = list(dept.titles), [t[3] for t in dept.titles]
        for _ in range(count - 1 - managers):
            title, low, high, _ = rng.choices(titles, weights=weights)[0]
            hired = day_in(_FOUNDED, today, rng.random() ** 0.75)
            hires.append(_Hire(department_id, _STAFF, title, hired, _salary(rng, low, high)))
    return hires


def _salary(rng: random.Random, low: int, high: int) -> float:
    return float(round((low + (high - low) * rng.random()) / 500) * 500)


def _hr_managers(rng: random.Random, hires: list[_Hire]) -> list[int | None]:
    """Staff report to a manager of their department who was there first, else to its head, else the CEO."""
    result: list[int | None] = []
    heads: dict[int, int] = {}
    managers: dict[int, list[int]] = {}
    for employee_id, hire in enumerate(hires, 1):
        boss: int | None = None
        if hire.level == _HEAD:
            boss = 1
            heads[hire.department_id] = employee_id
        elif hire.level == _MANAGER:
            boss = heads.get(hire.department_id, 1)
            managers.setdefault(hire.department_id, []).append(employee_id)
        elif hire.level == _STAFF:
            bosses = managers.get(hire.department_id) or [heads.get(hire.department_id, 1)]
            boss = rng.choice(bosses)
        result.append(boss)
    return result


def _salary_steps(hire: _Hire, today: date) -> list[tuple[date, float]]:
    """A raise on every work anniversary, ending at today's salary."""
    days = [hire.hired]
    while (next_day := anniversary(hire.hired, len(days))) <= today:
        days.append(next_day)
    raises = len(days) - 1
    return [(day, round(hire.salary / _RAISE_PER_YEAR ** (raises - k), 2)) for k, day in enumerate(days)]
