"""``sales_db``: B2B sales by region, rep, customer country and segment, five years of them."""

from __future__ import annotations

import random
import sqlite3
from datetime import date
from typing import NamedTuple

from samples.common import (
    APAC,
    COUNTRIES,
    EUROPE,
    LATAM,
    MEA,
    NA,
    REGIONS,
    Row,
    day_in,
    email_address,
    insert,
    month_start,
    person,
    quotas,
)

_SALES_CUSTOMERS = 1_200
_SALES_ROWS = 5_000
_SALES_YEARS = 5
_REPS_PER_REGION = {NA: 8, LATAM: 3, EUROPE: 10, MEA: 2, APAC: 5}
# segment: (share of customers, relative number of purchases, lognormal mu and sigma of an amount)
_SEGMENTS = {
    "SMB": (0.55, 1.0, 7.0, 0.6),
    "Mid-Market": (0.30, 2.5, 8.6, 0.6),
    "Enterprise": (0.15, 5.0, 10.0, 0.7),
}
_PRODUCT_LINES = {
    "Software Licenses": 40,
    "Support Plans": 25,
    "Consulting": 15,
    "Training": 12,
    "Hardware": 8,
}
_COMPANY_FIRST = (
    "Acme", "Apex", "Blue River", "Brightline", "Cedar", "Cobalt", "Crescent", "Evergreen",
    "Falcon", "Granite", "Harbor", "Horizon", "Ironwood", "Juniper", "Keystone", "Lakeside",
    "Maple", "Meridian", "Northwind", "Oakridge", "Orion", "Pinnacle", "Quantum", "Redwood",
    "Sierra", "Silverline", "Summit", "Trident", "Vertex", "Willow",
)  # fmt: skip
_COMPANY_SECOND = (
    "Analytics", "Foods", "Logistics", "Systems", "Health", "Energy", "Retail", "Media", "Labs",
    "Manufacturing", "Consulting", "Software", "Motors", "Pharma", "Capital", "Textiles",
    "Robotics", "Networks", "Brewing", "Studios",
)  # fmt: skip
_COMPANY_SUFFIX = ("", " Group", " Holdings", " & Co.")

_SALES_DDL = """
CREATE TABLE regions (
    region_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE sales_reps (
    sales_rep_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    region_id INTEGER NOT NULL REFERENCES regions (region_id),
    hire_date TEXT NOT NULL
);
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    country TEXT NOT NULL,
    city TEXT NOT NULL,
    segment TEXT NOT NULL CHECK (segment IN ('SMB', 'Mid-Market', 'Enterprise')),
    signup_date TEXT NOT NULL,
    sales_rep_id INTEGER NOT NULL REFERENCES sales_reps (sales_rep_id)
);
CREATE TABLE sales (
    sale_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    sales_rep_id INTEGER NOT NULL REFERENCES sales_reps (sales_rep_id),
    sale_date TEXT NOT NULL,
    product_line TEXT NOT NULL,
    amount REAL NOT NULL CHECK (amount > 0)
);
CREATE INDEX idx_sales_reps_region ON sales_reps (region_id);
CREATE INDEX idx_customers_country ON customers (country);
CREATE INDEX idx_customers_sales_rep ON customers (sales_rep_id);
CREATE INDEX idx_sales_customer ON sales (customer_id);
CREATE INDEX idx_sales_sales_rep ON sales (sales_rep_id);
CREATE INDEX idx_sales_date ON sales (sale_date);
"""


class _Rep(NamedTuple):
    sales_rep_id: int
    first_name: str
    last_name: str
    email: str
    region_id: int
    hire_date: str


class _SalesCustomer(NamedTuple):
    customer_id: int
    name: str
    country: str
    city: str
    segment: str
    signup_date: str
    sales_rep_id: int


def build(conn: sqlite3.Connection, rng: random.Random, today: date) -> None:
    conn.executescript(_SALES_DDL)
    insert(conn, "regions", [(i, name) for i, name in enumerate(REGIONS, 1)])
    reps = _sales_reps(rng, today)
    insert(conn, "sales_reps", reps)
    customers = _sales_customers(rng, today, reps)
    insert(conn, "customers", customers)
    insert(conn, "sales", _sales_rows(rng, today, customers))


def _sales_reps(rng: random.Random, today: date) -> list[_Rep]:
    seen: dict[str, int] = {}
    reps: list[_Rep] = []
    for region_id, region in enumerate(REGIONS, 1):
        for _ in range(_REPS_PER_REGION[region]):
            first, last = person(rng)
            hired = day_in(month_start(today, 12 * 8), month_start(today, 6), rng.random())
            email = email_address(first, last, "sales.example.com", seen)
            reps.append(_Rep(len(reps) + 1, first, last, email, region_id, hired.isoformat()))
    return reps


def _sales_customers(rng: random.Random, today: date, reps: list[_Rep]) -> list[_SalesCustomer]:
    """Countries in fixed, uneven proportions; each customer served by a rep of its region."""
    reps_by_region: dict[int, list[int]] = {}
    for rep in reps:
        reps_by_region.setdefault(rep.region_id, []).append(rep.sales_rep_id)
    counts = quotas([c.weight for c in COUNTRIES], _SALES_CUSTOMERS)
    countries = [c for c, n in zip(COUNTRIES, counts, strict=True) for _ in range(n)]
    rng.shuffle(countries)
    segments, shares = list(_SEGMENTS), [s[0] for s in _SEGMENTS.values()]
    start = month_start(today, 12 * _SALES_YEARS)
    names: set[str] = set()
    customers: list[_SalesCustomer] = []
    for customer_id, country in enumerate(countries, 1):
        name = _company_name(rng, names)
        segment = rng.choices(segments, weights=shares)[0]
        signup = day_in(start, today, rng.random())
        rep_id = rng.choice(reps_by_region[REGIONS.index(country.region) + 1])
        city = rng.choice(country.cities)
        customers.append(_SalesCustomer(customer_id, name, country.name, city, segment, signup.isoformat(), rep_id))
    return customers


def _company_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = f"{rng.choice(_COMPANY_FIRST)} {rng.choice(_COMPANY_SECOND)}{rng.choice(_COMPANY_SUFFIX)}"
        if name not in taken:
            taken.add(name)
            return name


def _sales_rows(rng: random.Random, today: date, customers: list[_SalesCustomer]) -> list[Row]:
    """Bigger customers buy more often and spend more; a sale never precedes the signup."""
    weights = [_SEGMENTS[c.segment][1] for c in customers]
    lines, line_weights = list(_PRODUCT_LINES), list(_PRODUCT_LINES.values())
    drafts: list[tuple[str, int, int, str, float]] = []
    for customer in rng.choices(customers, weights=weights, k=_SALES_ROWS):
        _, _, mu, sigma = _SEGMENTS[customer.segment]
        day = day_in(date.fromisoformat(customer.signup_date), today, rng.random())
        line = rng.choices(lines, weights=line_weights)[0]
        amount = round(min(rng.lognormvariate(mu, sigma), 250_000.0), 2)
        drafts.append((day.isoformat(), customer.customer_id, customer.sales_rep_id, line, amount))
    drafts.sort(key=lambda d: d[0])
    return [(i, cust, rep, day, line, amount) for i, (day, cust, rep, line, amount) in enumerate(drafts, 1)]
