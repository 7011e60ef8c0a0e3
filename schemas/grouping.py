"""Grouping repairs: a SELECT that aggregates without saying per what, given its GROUP BY.

A small model often writes ``SELECT name, COUNT(*) FROM pets`` for "how many pets of each
name", or ``SELECT name FROM pets ORDER BY COUNT(*) DESC LIMIT 1`` for "the most common
name". PostgreSQL refuses both; SQLite and MySQL count over the whole table and return one
arbitrary row's name, which is almost never the answer. ``regrouped`` proposes the same
query grouped by its plain select items, and moves an aggregate condition the model put in
WHERE (which every dialect refuses) to HAVING.

It leaves alone a select list whose only aggregates are MIN and MAX
(``SELECT name, MAX(age) FROM singer``): SQLite returns the row of that extreme, which is
what such a query usually means, unless the question asks per group (``per_group``: "the
maximum weight for each type of pet", ``asks_per_group``). Like a schema repair, a regrouped query is only a
proposal: the guard checks it and the database runs it, and its note says what changed.

>>> regrouped("SELECT name, COUNT(*) FROM pets", "sqlite").sql
'SELECT name, COUNT(*) FROM pets GROUP BY name'
>>> sql = "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.a_id ORDER BY COUNT(*) DESC LIMIT 1"
>>> regrouped(sql, "sqlite").notes
('grouped by T1.name: the aggregate ran over all rows',)
>>> regrouped("SELECT name FROM pets WHERE COUNT(*) > 2", "sqlite").sql
'SELECT name FROM pets GROUP BY name HAVING COUNT(*) > 2'
>>> regrouped("SELECT name, MAX(age) FROM singer", "sqlite") is None
True
>>> regrouped("SELECT PetType, MAX(weight) FROM pets", "sqlite", per_group=True).sql
'SELECT PetType, MAX(weight) FROM pets GROUP BY PetType'
>>> regrouped("SELECT name, COUNT(*) FROM pets GROUP BY name", "sqlite") is None
True
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from schemas.dialects import Dialect
from schemas.repair import Repair

EXTREMES = (exp.Max, exp.Min)
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
PER_GROUP = re.compile(r"\b(each|every|per)\b", re.IGNORECASE)


def asks_per_group(question: str) -> bool:
    """Whether ``question`` asks for a figure per group ("for each type", "per country").

    >>> asks_per_group("List the maximum weight and type for each type of pet."), asks_per_group("Who is oldest?")
    (True, False)
    """
    return PER_GROUP.search(question) is not None


def regrouped(sql: str, dialect: Dialect, *, per_group: bool = False) -> Repair | None:
    """``sql`` with each ungrouped aggregating SELECT grouped by its plain select items, or
    None when no SELECT needs it (or ``sql`` does not parse)."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return None
    if tree is None:
        return None
    notes: list[str] = []
    for select in list(tree.find_all(exp.Select)):
        note = _regroup(select, dialect, per_group=per_group)
        if note:
            notes.append(note)
    if not notes:
        return None
    return Repair(sql=tree.sql(dialect=dialect), notes=tuple(notes))


def ungrouped(select: exp.Select) -> bool:
    """Whether ``select`` mixes plain select items with aggregates (in its select list,
    ORDER BY or WHERE) and has no GROUP BY: one arbitrary row's values, in SQLite and MySQL.

    >>> ungrouped(sqlglot.parse_one("SELECT name FROM t ORDER BY COUNT(*) DESC"))
    True
    >>> ungrouped(sqlglot.parse_one("SELECT COUNT(*), MAX(age) FROM t WHERE age > (SELECT AVG(age) FROM t)"))
    False
    """
    if select.args.get("group") or not _plain_items(select):
        return False
    return bool(_listed(select) or _ordered(select) or _where_aggregates(select))


def _regroup(select: exp.Select, dialect: Dialect, *, per_group: bool) -> str | None:
    if not ungrouped(select):
        return None
    notes = []
    conditions = _where_aggregates(select)
    compared = [c for c in conditions if _own_all(c, select, exp.Column)]
    if not all(_column_against_aggregate(c, select) for c in compared):
        return None  # an aggregate inside an OR, a CASE…: no reading is safe enough to propose
    for condition in compared:  # age > AVG(age): the average of all rows, in a subquery
        for aggregate in _own_all(condition, select, exp.AggFunc):
            aggregate.replace(exp.Subquery(this=_over_all(select, aggregate)))
        notes.append(f"{condition.sql(dialect=dialect)}: the aggregate computed over all rows in a subquery")
    conditions = [c for c in conditions if not any(c is d for d in compared)]
    listed, ordered = _listed(select), _ordered(select)
    if not listed and not ordered and not conditions:
        return "; ".join(notes) or None
    extremes_only = listed and not ordered and not conditions and all(isinstance(a, EXTREMES) for a in listed)
    if extremes_only and not per_group:
        return "; ".join(notes) or None  # the row of the extreme: SQLite's reading, and the usual meaning
    keys = [item.unalias().copy() for item in _plain_items(select)]
    select.group_by(*keys, copy=False)
    names = ", ".join(k.sql(dialect=dialect) for k in keys)
    if conditions:
        where = select.args["where"]
        rest = [c for c in _conjuncts(where.this) if not any(c is d for d in conditions)]
        select.set("where", exp.Where(this=exp.and_(*rest)) if rest else None)
        select.having(exp.and_(*conditions), copy=False)
        notes.append(f"grouped by {names}: the aggregate condition moved from WHERE to HAVING")
    else:
        notes.append(f"grouped by {names}: the aggregate ran over all rows")
    return "; ".join(notes)


def _column_against_aggregate(condition: exp.Expr, select: exp.Select) -> bool:
    """``age > AVG(age)``: a comparison of plain columns on one side with aggregates alone
    on the other."""
    if not isinstance(condition, COMPARISONS):
        return False
    sides = [
        (bool(_own_all(side, select, exp.Column)), bool(_own_all(side, select, exp.AggFunc)))
        for side in (condition.left, condition.right)
    ]
    return sorted(sides) == [(False, True), (True, False)]


def _plain_items(select: exp.Select) -> list[exp.Expr]:
    """The select items with a column outside any aggregate; none when the list has a star
    (``*`` or ``t.*``)."""
    if any(_star(item.unalias()) for item in select.expressions):
        return []
    return [i for i in select.expressions if _own_all(i, select, exp.Column) and not _own_all(i, select, exp.AggFunc)]


def _star(item: exp.Expr) -> bool:
    return isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star))


def _listed(select: exp.Select) -> list[exp.Expr]:
    return [agg for item in select.expressions for agg in _own_all(item, select, exp.AggFunc)]


def _ordered(select: exp.Select) -> list[exp.Expr]:
    order = select.args.get("order")
    items = list(order.expressions) if order is not None else []
    return [agg for item in items for agg in _own_all(item, select, exp.AggFunc)]


def _where_aggregates(select: exp.Select) -> list[exp.Expr]:
    """The conjuncts of WHERE that hold an aggregate of this select."""
    where = select.args.get("where")
    if where is None:
        return []
    return [c for c in _conjuncts(where.this) if _own_all(c, select, exp.AggFunc)]


def _over_all(select: exp.Select, aggregate: exp.Expr) -> exp.Select:
    """``SELECT aggregate`` over the same tables as ``select``, without its conditions."""
    sub = exp.select(aggregate.copy())
    source = select.args.get("from_")
    if source is not None:
        sub.set("from_", source.copy())
    if select.args.get("joins"):
        sub.set("joins", [j.copy() for j in select.args["joins"]])
    return sub


def _own_all(node: exp.Expr, select: exp.Select, kind: type[exp.Expr]) -> list[exp.Expr]:
    """The ``kind`` nodes under ``node`` that belong to ``select`` itself: not inside a
    subquery, not an aggregate used as a window (``SUM(x) OVER (...)``)."""
    found = []
    for sub in node.find_all(kind):
        if sub.find_ancestor(exp.Select) is not select:
            continue
        if isinstance(sub, exp.AggFunc) and _in_window(sub, select):
            continue
        if isinstance(sub, exp.Column) and sub.find_ancestor(exp.AggFunc, exp.Window) is not None:
            continue
        found.append(sub)
    return found


def _in_window(aggregate: exp.Expr, select: exp.Select) -> bool:
    """``SUM(x) OVER (…)``, ``COUNT(*) FILTER (WHERE …) OVER (…)``: a window, not an aggregate."""
    window = aggregate.find_ancestor(exp.Window, exp.Select)
    return isinstance(window, exp.Window) and window.find_ancestor(exp.Select) is select


def _conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    if isinstance(condition, exp.And):
        return [*_conjuncts(condition.left), *_conjuncts(condition.right)]
    return [condition]
