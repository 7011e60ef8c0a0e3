"""Choosing among the model's candidate answers by what they return.

The model gives a greedy answer and, when asked, a few sampled ones on the same prompt.
Each distinct candidate goes through the guard and a short read-only run of a few rows;
the ones the guard rejects or the database refuses are dropped. Among the rest, the
candidates are grouped by their result (the rows as a multiset, the column count) and each
group's votes are weighed (self-consistency): a group with rows beats any without (an empty
result rarely answers a question), then the heavier group wins, then the earliest. A
candidate's vote weighs 1, the greedy one's ``GREEDY_WEIGHT`` (the model's most likely
answer), halved for each doubt about it (``doubts``): a column the guard had to move to
another table, or plain columns beside aggregates without GROUP BY (one arbitrary row's
values, which SQLite and MySQL return where PostgreSQL refuses). The winner is the group's
earliest member.
When every candidate fails, the repair round sees the greedy one's error with the columns
of the tables it concerns (``repair_error``).

>>> a = Candidate(sql="a", index=0, normalized="A", result=(1, ("(1,)",)), rows=1)
>>> b = Candidate(sql="b", index=1, normalized="B", result=(1, ("(2,)",)), rows=1)
>>> c = Candidate(sql="c", index=2, normalized="C", result=(1, ("(2,)",)), rows=1)
>>> choose([a, b, c]).sql
'b'
>>> choose([a, b]).sql
'a'
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from schemas.dialects import Dialect
from schemas.grouping import ungrouped
from schemas.guard.rules import REQUALIFIED
from schemas.model import DatabaseSchema, Table

FLOAT_DIGITS = 6  # results that differ only past this many digits agree
GREEDY_WEIGHT = 1.5  # the greedy answer's vote: above one sample's, below two agreeing ones


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One candidate answer after the guard and its short run."""

    sql: str  # as the model wrote it
    index: int  # 0: the greedy answer, then the samples in order
    normalized: str | None = None  # the guard's SQL, when it accepted it
    rule: str | None = None  # the guard rule, or "database_error", that refused it
    problem: str | None = None  # why, in words the model is shown on a repair
    warnings: tuple[str, ...] = ()
    result: Hashable | None = None  # what it returned; None when it did not finish in time
    rows: int = 0
    doubts: int = 0  # see ``doubts``: each halves its vote

    @property
    def weight(self) -> float:
        return (GREEDY_WEIGHT if self.index == 0 else 1.0) * 0.5**self.doubts

    @property
    def ok(self) -> bool:
        return self.problem is None and self.normalized is not None


def result_key(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Hashable:
    """Rows as a multiset (order aside: the same rows sorted otherwise still agree) and the
    number of columns (their names aside: aliases differ between candidates)."""
    return (len(columns), tuple(sorted(repr(tuple(_value(v) for v in row)) for row in rows)))


def _value(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, FLOAT_DIGITS)
    return value


def choose(candidates: Sequence[Candidate]) -> Candidate | None:
    """The candidate whose result most candidates share (see the module's rule); None when
    every candidate failed."""
    groups: dict[Hashable, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.ok:
            key = candidate.result if candidate.result is not None else ("unfinished", candidate.index)
            groups.setdefault(key, []).append(candidate)
    if not groups:
        return None

    def rank(key: Hashable) -> tuple[bool, float, int]:
        group = groups[key]
        first = min(group, key=lambda c: c.index)
        return (first.rows > 0, sum(c.weight for c in group), -first.index)

    return min(groups[max(groups, key=rank)], key=lambda c: c.index)


def doubts(sql: str, warnings: Sequence[str], dialect: Dialect) -> int:
    """How many reasons there are to trust a guard-accepted candidate less: the guard moved
    one of its columns to another table (``REQUALIFIED``), or a SELECT mixes aggregates and
    plain columns without GROUP BY (``schemas.grouping.ungrouped``).

    >>> doubts("SELECT name, SUM(sales) FROM singer", (), "sqlite")
    1
    >>> doubts("SELECT name, SUM(sales) FROM singer GROUP BY name", ("T1.x read as T2.x",), "sqlite")
    1
    >>> doubts("SELECT COUNT(*), MAX(age) FROM singer WHERE age > (SELECT AVG(age) FROM singer)", (), "sqlite")
    0
    """
    found = int(any(REQUALIFIED.match(w) for w in warnings))
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return found
    return found + int(any(ungrouped(select) for select in tree.find_all(exp.Select)))


def distinct(sqls: Sequence[str]) -> dict[str, list[int]]:
    """Each distinct SQL text (whitespace aside) with the candidate indexes that gave it,
    in order: each is checked and run once, and counts once per candidate that gave it."""
    seen: dict[str, list[int]] = {}
    texts: dict[str, str] = {}
    for index, sql in enumerate(sqls):
        key = " ".join(sql.split()).rstrip(";").strip()
        texts.setdefault(key, sql)
        seen.setdefault(texts[key], []).append(index)
    return seen


MAX_REPAIR_TABLES = 4


def repair_error(problem: str, sql: str, schema: DatabaseSchema, *, limit: int) -> str:
    """``problem`` with the part of the schema it concerns: the columns of the tables the
    failed query reads and of those the problem names (``fname is a column of Student, not
    of Pets``), so that the repair round sees the right names beside the error. At most
    ``limit`` characters; the problem itself always comes first."""
    named: list[Table] = []
    for table in (*_tables_in(sql, schema), *_tables_named(problem, schema)):
        if table not in named:
            named.append(table)
    text = problem.rstrip(".") + "."
    for table in named[:MAX_REPAIR_TABLES]:
        line = f" {table.name} has the columns {', '.join(c.name for c in table.columns)}."
        if len(text) + len(line) > limit:
            break
        text += line
    return text[:limit]


def _tables_in(sql: str, schema: DatabaseSchema) -> list[Table]:
    try:
        tree = sqlglot.parse_one(sql, read=schema.dialect)
    except SqlglotError:
        return []
    found = (schema.find_table(t.name, quoted=t.this.quoted) for t in tree.find_all(exp.Table) if t.name)
    return [t for t in found if t is not None]


def _tables_named(problem: str, schema: DatabaseSchema) -> list[Table]:
    hits = []
    for table in schema.tables:
        match = re.search(rf"(?<![\w.]){re.escape(table.name)}(?![\w])", problem)
        if match:
            hits.append((match.start(), table))
    return [t for _, t in sorted(hits, key=lambda h: h[0])]
