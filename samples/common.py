"""What the sample generators share: dates counted back from ``today``, proportional shares,
people and countries, and a plain insert. Every draw comes from the generator's own
``random.Random``, so a sample's content depends only on its seed and ``today``."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

DAYS_PER_YEAR = 365

Row = tuple[object, ...]


def month_start(today: date, months_ago: int) -> date:
    index = today.year * 12 + today.month - 1 - months_ago
    return date(index // 12, index % 12 + 1, 1)


def day_in(start: date, end: date, fraction: float) -> date:
    """The day ``fraction`` (0 ≤ fraction < 1) of the way from ``start`` to ``end``, both included."""
    days = (end - start).days + 1
    return start + timedelta(days=min(int(fraction * days), days - 1))


def anniversary(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def quotas(weights: Sequence[float], total: int) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder), so every share shows."""
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def email_address(first: str, last: str, domain: str, seen: dict[str, int]) -> str:
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    seen[local] = seen.get(local, 0) + 1
    suffix = "" if seen[local] == 1 else str(seen[local])
    return f"{local}{suffix}@{domain}"


def insert(conn: sqlite3.Connection, table: str, rows: Sequence[Row]) -> None:
    marks = ", ".join("?" * len(rows[0]))
    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


_FIRST_NAMES = (
    "Aisha", "Alejandro", "Amara", "Andrei", "Anna", "Arjun", "Ben", "Camille", "Carlos", "Chen",
    "Chloe", "Daniel", "David", "Elena", "Emily", "Emma", "Fatima", "Felix", "Gabriel", "Grace",
    "Hannah", "Hiroshi", "Ibrahim", "Isabella", "James", "Jin", "Julia", "Kai", "Kenji", "Laura",
    "Leila", "Liam", "Lucas", "Maria", "Mateo", "Maya", "Mei", "Michael", "Mohammed", "Nadia",
    "Noah", "Olivia", "Omar", "Priya", "Rafael", "Ravi", "Rosa", "Samuel", "Sara", "Sofia",
    "Tariq", "Thomas", "Valentina", "Victor", "Wei", "William", "Yara", "Yuki", "Zara", "Zoe",
)  # fmt: skip
_LAST_NAMES = (
    "Adams", "Ahmed", "Alvarez", "Andersen", "Bauer", "Becker", "Brown", "Chen", "Costa", "Das",
    "Dubois", "Evans", "Fischer", "Garcia", "Gupta", "Hansen", "Hughes", "Ito", "Jensen", "Johnson",
    "Kaur", "Khan", "Kim", "Kowalski", "Kumar", "Lee", "Lopez", "Martin", "Meyer", "Moreau",
    "Murphy", "Nakamura", "Nguyen", "Novak", "O'Brien", "Okafor", "Patel", "Perez", "Petrov", "Rossi",
    "Sanchez", "Santos", "Sato", "Schmidt", "Silva", "Singh", "Smith", "Suzuki", "Tanaka", "Taylor",
    "Thompson", "Wagner", "Walker", "Wang", "Weber", "Williams", "Wilson", "Wong", "Yilmaz", "Zhang",
)  # fmt: skip


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)


@dataclass(frozen=True)
class Country:
    name: str
    region: str
    weight: float
    cities: tuple[str, ...]


NA, LATAM, EUROPE, MEA, APAC = (
    "North America", "Latin America", "Europe", "Middle East & Africa", "Asia Pacific",
)  # fmt: skip
REGIONS = (NA, LATAM, EUROPE, MEA, APAC)
COUNTRIES = (
    Country("United States", NA, 26.0, ("New York", "San Francisco", "Chicago", "Austin", "Seattle")),
    Country("United Kingdom", EUROPE, 11.0, ("London", "Manchester", "Edinburgh")),
    Country("Germany", EUROPE, 9.0, ("Berlin", "Munich", "Hamburg")),
    Country("Canada", NA, 7.0, ("Toronto", "Vancouver", "Montreal")),
    Country("France", EUROPE, 6.5, ("Paris", "Lyon", "Toulouse")),
    Country("India", APAC, 5.0, ("Bangalore", "Mumbai", "Pune")),
    Country("Australia", APAC, 4.6, ("Sydney", "Melbourne", "Brisbane")),
    Country("Netherlands", EUROPE, 4.0, ("Amsterdam", "Rotterdam")),
    Country("Brazil", LATAM, 3.8, ("São Paulo", "Rio de Janeiro", "Belo Horizonte")),
    Country("Japan", APAC, 3.5, ("Tokyo", "Osaka")),
    Country("Spain", EUROPE, 3.2, ("Madrid", "Barcelona", "Valencia")),
    Country("Mexico", NA, 2.8, ("Mexico City", "Guadalajara", "Monterrey")),
    Country("Italy", EUROPE, 2.5, ("Milan", "Rome", "Turin")),
    Country("Sweden", EUROPE, 2.2, ("Stockholm", "Gothenburg")),
    Country("Singapore", APAC, 2.0, ("Singapore",)),
    Country("Ireland", EUROPE, 1.8, ("Dublin", "Cork")),
    Country("United Arab Emirates", MEA, 1.5, ("Dubai", "Abu Dhabi")),
    Country("Poland", EUROPE, 1.3, ("Warsaw", "Kraków")),
    Country("Argentina", LATAM, 1.1, ("Buenos Aires", "Córdoba")),
    Country("South Africa", MEA, 0.9, ("Johannesburg", "Cape Town")),
    Country("Chile", LATAM, 0.7, ("Santiago", "Valparaíso")),
)
