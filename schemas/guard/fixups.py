"""Rewrite model output written in another dialect into SQL the target engine runs.

The seed model learned on Spider (SQLite) yet often writes MySQL (``NOW()``,
``DATE_SUB(..., INTERVAL 1 MONTH)``); sqlglot alone transpiles some of it into SQL
that does not run on SQLite, so these rules fix the AST first.
"""

from __future__ import annotations

import re

from sqlglot import exp

from schemas.dialects import Dialect

_NOW = {
    "NOW": exp.CurrentTimestamp,
    "SYSDATE": exp.CurrentTimestamp,
    "GETDATE": exp.CurrentTimestamp,
    "LOCALTIMESTAMP": exp.CurrentTimestamp,
    "CURDATE": exp.CurrentDate,
    "CURTIME": exp.CurrentTime,
}
_INTERVAL_TEXT = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
_SQLITE_UNITS = {
    "second": "seconds",
    "minute": "minutes",
    "hour": "hours",
    "day": "days",
    "week": "days",
    "month": "months",
    "year": "years",
}


def fix_up(tree: exp.Expr, dialect: Dialect) -> exp.Expr:
    tree = tree.transform(_current_time_functions)
    if dialect == "sqlite":
        tree = tree.transform(_sqlite_date_arithmetic)
    return tree


def _current_time_functions(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Anonymous) and not node.expressions:
        factory = _NOW.get(node.name.upper())
        if factory is not None:
            return factory()
    return node


def _sqlite_date_arithmetic(node: exp.Expr) -> exp.Expr:
    """DATE_SUB(x, INTERVAL 1 MONTH) / x - INTERVAL '1 month' -> DATETIME(x, '-1 months')."""
    sign = 1
    if isinstance(
        node,
        (
            exp.DateAdd,
            exp.DateSub,
            exp.TsOrDsAdd,
            exp.TimestampAdd,
            exp.TimestampSub,
            exp.DatetimeAdd,
            exp.DatetimeSub,
        ),
    ):
        base, amount = node.this, node.expression
        unit = node.args.get("unit")
        sign = -1 if isinstance(node, (exp.DateSub, exp.TimestampSub, exp.DatetimeSub)) else 1
    elif isinstance(node, (exp.Add, exp.Sub)) and isinstance(node.expression, exp.Interval):
        base, amount, unit = node.this, node.expression, None
        sign = -1 if isinstance(node, exp.Sub) else 1
    else:
        return node
    parsed = _amount_and_unit(amount, unit)
    if parsed is None:
        return node
    value, unit_name = parsed
    unit_name = unit_name.lower().rstrip("s")
    if unit_name not in _SQLITE_UNITS:
        return node
    if unit_name == "week":
        value *= 7
    value *= sign
    modifier = f"{'+' if value >= 0 else '-'}{_num(abs(value))} {_SQLITE_UNITS[unit_name]}"
    func = "DATE" if isinstance(base, exp.CurrentDate) else "DATETIME"
    if isinstance(base, (exp.CurrentTimestamp, exp.CurrentDate)):
        base = exp.Literal.string("now")
    return exp.Anonymous(this=func, expressions=[base, exp.Literal.string(modifier)])


def _amount_and_unit(amount: exp.Expr, unit: exp.Expr | None) -> tuple[float, str] | None:
    if isinstance(amount, exp.Interval):
        unit = amount.args.get("unit") or unit
        amount = amount.this
    if isinstance(amount, exp.Neg) and isinstance(amount.this, exp.Literal):
        number = _to_float(amount.this.this)
        return None if number is None or unit is None else (-number, unit.name)
    if not isinstance(amount, exp.Literal):
        return None
    if unit is None:
        match = _INTERVAL_TEXT.match(amount.this)
        return (float(match[1]), match[2]) if match else None
    number = _to_float(amount.this)
    return None if number is None else (number, unit.name)


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
