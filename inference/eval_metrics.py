"""Scoring for the evaluation harness: execution match, normalized exact match, percentiles
and McNemar's paired test. Pure functions, no model and no database.

Execution match follows the official Spider test-suite evaluation (``result_eq`` in
taoyds/test-suite-sql-eval): the two results must have the same rows as multisets, in the
same order only when the gold query has ORDER BY, and the predicted columns may come in
any order. One deliberate difference: floats are rounded to ``FLOAT_DIGITS`` decimals,
because SQLite's SUM over REAL depends on the order rows are added in, and a different
but equivalent join order must not count as wrong.

>>> execution_match([(1, "a"), (2, "b")], [("b", 2), ("a", 1)], order_matters=False)
True
>>> execution_match([(1,), (2,)], [(2,), (1,)], order_matters=True)
False
>>> exact_match("SELECT name FROM t ;", "select  name\\nfrom T")
True
>>> mcnemar(0, 6).p_value
0.03125
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import permutations, product
from typing import Any

FLOAT_DIGITS = 6
# Below this many discordant pairs the chi-square approximation is poor: use the exact test.
EXACT_BELOW = 25
_MAX_PERMUTATIONS = 5_000

Row = tuple[Any, ...]


def _clean(value: Any) -> Any:
    return round(value, FLOAT_DIGITS) if isinstance(value, float) else value


def execution_match(predicted: Sequence[Row], gold: Sequence[Row], *, order_matters: bool) -> bool:
    """Whether ``predicted`` denotes the same result as ``gold`` (see the module docstring)."""
    pred = [tuple(_clean(v) for v in row) for row in predicted]
    ref = [tuple(_clean(v) for v in row) for row in gold]
    if not pred and not ref:
        return True
    if len(pred) != len(ref):
        return False
    width = len(ref[0])
    if len(pred[0]) != width:
        return False
    if not order_matters and Counter(_sorted_row(r) for r in pred) != Counter(_sorted_row(r) for r in ref):
        return False  # quick rejection: the same values must appear row by row, whatever the columns
    for perm in _column_orders(pred, ref):
        permuted = [tuple(row[i] for i in perm) for row in pred]
        if permuted == ref if order_matters else Counter(permuted) == Counter(ref):
            return True
    return False


def _sorted_row(row: Row) -> tuple[str, ...]:
    return tuple(sorted(repr(float(v)) if isinstance(v, int | float) else repr(v) for v in row))


def _column_orders(pred: list[Row], ref: list[Row]) -> Iterator[tuple[int, ...]]:
    """Orders of the predicted columns worth trying: a gold column can only come from a
    predicted column holding the same values (the test-suite's constraint permutation)."""
    width = len(ref[0])
    if width == 1:
        yield (0,)
        return
    ref_values = [Counter(row[i] for row in ref) for i in range(width)]
    pred_values = [Counter(row[i] for row in pred) for i in range(width)]
    options = [[j for j in range(width) if pred_values[j] == ref_values[i]] for i in range(width)]
    if math.prod(len(o) for o in options) <= _MAX_PERMUTATIONS:
        candidates: Iterator[tuple[int, ...]] = product(*options)
    else:
        candidates = permutations(range(width))
    for count, perm in enumerate(candidates):
        if count >= _MAX_PERMUTATIONS:
            return
        if len(set(perm)) == width:
            yield perm


def normalize_sql(sql: str) -> str:
    """The seed's normalization for exact match: lower case, one space between tokens, no
    space inside parentheses or before commas, double quotes as single, no trailing semicolon.

    >>> normalize_sql('SELECT COUNT( * ) , "x" FROM t;')
    "select count(*), 'x' from t"
    """
    text = " ".join(sql.strip().rstrip(";").split()).lower().replace('"', "'")
    for before, after in (("( ", "("), (" )", ")"), (" ,", ",")):
        text = text.replace(before, after)
    return text.strip()


def exact_match(predicted: str, gold: str) -> bool:
    return bool(predicted.strip()) and normalize_sql(predicted) == normalize_sql(gold)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.5
    """
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True, kw_only=True)
class McNemar:
    """Paired test of two configurations on the same questions.

    ``only_a``: questions A got right and B wrong; ``only_b`` the reverse. The statistic is
    the smaller discordant count for the exact test, chi-square (continuity corrected) otherwise.
    """

    only_a: int
    only_b: int
    statistic: float
    p_value: float
    method: str

    def to_json(self) -> dict[str, object]:
        return {
            "only_a": self.only_a,
            "only_b": self.only_b,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "method": self.method,
        }


def mcnemar(only_a: int, only_b: int) -> McNemar:
    """Two-sided McNemar test: exact binomial below ``EXACT_BELOW`` discordant pairs.

    >>> mcnemar(1, 9).p_value
    0.021484375
    >>> round(mcnemar(10, 30).p_value, 6)
    0.002663
    """
    n = only_a + only_b
    if n == 0:
        return McNemar(only_a=0, only_b=0, statistic=0.0, p_value=1.0, method="exact binomial")
    if n < EXACT_BELOW:
        k = min(only_a, only_b)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return McNemar(
            only_a=only_a, only_b=only_b, statistic=float(k), p_value=min(1.0, 2 * tail), method="exact binomial"
        )
    chi2 = (abs(only_a - only_b) - 1) ** 2 / n
    return McNemar(
        only_a=only_a,
        only_b=only_b,
        statistic=chi2,
        p_value=math.erfc(math.sqrt(chi2 / 2)),
        method="chi-square, continuity corrected",
    )
