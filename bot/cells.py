"""A result's values as an analyst reads them: one formatter for the console, Slack and Teams,
and one monospace table (``format_table``) for the console, Slack and the MCP server.

Only what people read goes through here; the CSV export and ``--json`` keep every digit.

- A fraction (``float``, ``Decimal``) of 1 or more: two decimals and thousands separators,
  ``.00`` dropped; under 1: three significant digits.
- An integer (an integral ``Decimal`` too): thousands separators from 10,000 on, so that
  years and small codes stay as written; never in a column named like an identifier or a
  year (``id``, ``customer_id``, ``CustomerID``, ``fiscal_year``, ``zip``, ``phone_number``).
- ``None`` is ``NULL``; text, booleans and everything else as ``str`` gives them.

>>> [cell_text(v) for v in (8963.049999999988, 0.000123456, 1234567.891, 2024, 1234567)]
['8,963.05', '0.000123', '1,234,567.89', '2024', '1,234,567']
>>> cell_text(100234, column="order_id"), cell_text(None), cell_text(True)
('100234', 'NULL', 'True')
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import lru_cache
from typing import Any

from bot.core.text import cut

NULL = "NULL"
GROUP_INTS_FROM = 10_000  # 2024 stays a year; 12,345 reads as a quantity
FIXED_BELOW = 1e15  # larger fractions in scientific notation: their cents mean nothing
SMALL_DIGITS = 3  # significant digits of a fraction under 1
IDENTIFIER_WORDS = frozenset(
    {"id", "uuid", "year", "yr", "zip", "zipcode", "postcode", "code", "phone", "number", "no", "num"}
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def cell_text(value: object, *, column: str | None = None) -> str:
    """What a table shows for ``value``, a cell of ``column`` (its name decides integer grouping)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return _integer(value, column)
    if isinstance(value, float):
        return _fraction(value) if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _decimal(value, column)
    return str(value)


def is_number(value: object) -> bool:
    """A value that ``cell_text`` formats as a number (and a table aligns to the right)."""
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


@lru_cache(maxsize=256)
def is_identifier_column(name: str) -> bool:
    """A column whose integers are labels, not quantities: its name's last word says so.

    >>> [is_identifier_column(n) for n in ("id", "customerId", "hire_year", "paid", "num_orders")]
    [True, True, True, False, False]
    """
    words = _WORD.findall(name)
    return bool(words) and words[-1].lower() in IDENTIFIER_WORDS


def _integer(value: int, column: str | None) -> str:
    if abs(value) < GROUP_INTS_FROM or (column is not None and is_identifier_column(column)):
        return str(value)
    return f"{value:,}"


def _decimal(value: Decimal, column: str | None) -> str:
    if not value.is_finite():
        return str(value)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:  # NUMERIC with no scale: SUM() of integers
        return _integer(int(value), column)
    with localcontext(rounding=ROUND_HALF_UP):  # 2.675 → 2.68, as on paper
        return _fraction(value)


def _fraction(value: float | Decimal) -> str:
    size = -value if value < 0 else value
    if size == 0:
        return "0"
    if size >= FIXED_BELOW:
        return f"{value:.6g}"
    if size >= 1:
        text = f"{value:,.2f}"
        return text.removesuffix(".00")
    return f"{value:.{SMALL_DIGITS}g}"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 40) -> str:
    """A monospace table (the console's, Slack's and the MCP server's); a column of numbers is aligned right.

    >>> print(format_table(["country", "revenue"], [["DE", 8963.049999999988], ["FR", None]]))
    country |  revenue
    --------+---------
    DE      | 8,963.05
    FR      |     NULL
    """
    cells = [[_cell(v, c, max_width) for v, c in zip(row, columns, strict=True)] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [_numeric(rows, i) for i in range(len(columns))]
    lines = [
        " | ".join(_pad(c, w, right) for c, w, right in zip(columns, widths, numeric, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    lines += [" | ".join(_pad(v, w, right) for v, w, right in zip(r, widths, numeric, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any, column: str, max_width: int) -> str:
    text = cell_text(value, column=column)
    return cut(text, max_width)


def _numeric(rows: Sequence[Sequence[Any]], index: int) -> bool:
    values = [r[index] for r in rows if r[index] is not None]
    return bool(values) and all(is_number(v) for v in values)


def _pad(text: str, width: int, right: bool) -> str:
    return text.rjust(width) if right else text.ljust(width)
