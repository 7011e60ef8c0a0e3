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


# --- Spider's hardness ----------------------------------------------------------------------

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")


def hardness(sql: str) -> str:
    """Spider's difficulty of a gold query: ``eval_hardness`` of Spider's ``evaluation.py``
    (taoyds/spider), re-implemented on a sqlglot parse. ValueError when ``sql`` does not parse.

    Only the outermost query is looked at (for ``A UNION B``, the query ``A``), as in Spider:

    * component 1: one each for WHERE, GROUP BY, ORDER BY and LIMIT, one per joined table
      beyond the first, one per OR and one per LIKE in the join conditions, WHERE and HAVING;
    * component 2: nested queries: one per subquery value of a condition (join, WHERE,
      HAVING) and one for a UNION, INTERSECT or EXCEPT;
    * others: one each for more than one "aggregation", more than one selected column, more
      than one WHERE condition and more than one GROUP BY column.

    Spider's aggregation count has two quirks kept here so the levels agree with Spider's:
    a condition's first field is its NOT flag, so in WHERE it counts conditions written
    ``NOT IN``/``NOT LIKE``/``NOT BETWEEN``, not aggregates, and HAVING counts those plus
    every AND/OR between its conditions (``'and'[0] != 0``). SELECT items count when the
    item itself is MAX/MIN/COUNT/SUM/AVG (``max(a) - min(a)`` does not), ORDER BY counts
    the aggregated operands of each item.

    >>> hardness("SELECT count(*) FROM singer")
    'easy'
    >>> hardness("SELECT name, country, age FROM singer ORDER BY age DESC")
    'medium'
    >>> hardness("SELECT name FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)")
    'hard'
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except SqlglotError as err:
        raise ValueError(f"not parseable SQL: {str(err).splitlines()[0] if str(err) else sql!r}") from None
    set_operation = isinstance(_unwrap(tree), exp.SetOperation)
    select = _leftmost_select(tree)
    if select is None:
        raise ValueError(f"not a SELECT: {sql!r}")
    comp1, comp2, others = _spider_counts(select)
    comp2 += int(set_operation)
    return _level(comp1, comp2, others)


def _level(comp1: int, comp2: int, others: int) -> str:
    """``eval_hardness``'s thresholds, as Spider writes them."""
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (
        (others > 2 and comp1 <= 2 and comp2 == 0)
        or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
        or (comp1 <= 1 and others == 0 and comp2 <= 1)
    ):
        return "hard"
    return "extra"


def _unwrap(node: Any) -> Any:
    from sqlglot import exp

    while isinstance(node, exp.Subquery | exp.Paren):
        node = node.this
    return node


def _leftmost_select(tree: Any) -> Any:
    """The query Spider's parser reads first: for ``A UNION B``, ``A`` (the rest is nested)."""
    from sqlglot import exp

    node = _unwrap(tree)
    while isinstance(node, exp.SetOperation):
        node = _unwrap(node.this)
    return node if isinstance(node, exp.Select) else None


def _conditions(node: Any) -> tuple[list[Any], list[str]]:
    """A boolean expression as Spider's flat condition list: the conditions in order and
    the ``and``/``or`` between them."""
    from sqlglot import exp

    node = _unwrap(node) if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.And | exp.Or):
        left, left_ops = _conditions(node.this)
        right, right_ops = _conditions(node.expression)
        return left + right, [*left_ops, "and" if isinstance(node, exp.And) else "or", *right_ops]
    return [node], []


def _spider_counts(select: Any) -> tuple[int, int, int]:
    """``count_component1``, ``count_component2`` (without set operations), ``count_others``."""
    from sqlglot import exp

    aggregates = (exp.Max, exp.Min, exp.Count, exp.Sum, exp.Avg)

    def clause(key: str) -> tuple[list[Any], list[str]]:
        part = select.args.get(key)
        return _conditions(part.this) if part is not None else ([], [])

    joins = select.args.get("joins") or []
    join_conds: list[Any] = []
    join_ops: list[str] = []
    for join in joins:
        on = join.args.get("on")
        if on is None:
            continue
        conds, ops = _conditions(on)
        join_ops += (["and"] if join_conds else []) + ops  # Spider joins successive ONs with 'and'
        join_conds += conds
    where, where_ops = clause("where")
    having, having_ops = clause("having")
    group = select.args.get("group")
    group_items = list(group.expressions) if group is not None else []
    order = select.args.get("order")
    order_items = [o.this if isinstance(o, exp.Ordered) else o for o in order.expressions] if order else []
    all_conds = join_conds + where + having

    def inner(cond: Any) -> Any:
        return cond.this if isinstance(cond, exp.Not) else cond

    def negated(cond: Any) -> bool:  # Spider's not_op: x NOT IN / NOT LIKE / NOT BETWEEN …, not IS NOT
        if isinstance(cond, exp.Not):
            return not isinstance(cond.this, exp.Is)
        return bool(cond.args.get("negate"))  # sqlglot writes NOT LIKE as Like(negate=True)

    def nested(cond: Any) -> int:
        core = inner(cond)
        if isinstance(core, exp.Exists):
            return 1
        values = [v for k, v in core.args.items() if k != "this" and isinstance(v, exp.Expression)]
        return sum(1 for v in values if isinstance(_unwrap(v), exp.Select | exp.SetOperation))

    def is_aggregate(node: Any) -> bool:
        return isinstance(_unwrap(node), aggregates)

    comp1 = sum(1 for key in ("where", "group", "order", "limit") if select.args.get(key) is not None)
    if select.args.get("from_", select.args.get("from")) is not None:
        comp1 += len(joins)  # table units beyond the first
    comp1 += (join_ops + where_ops + having_ops).count("or")
    comp1 += sum(1 for c in all_conds if isinstance(inner(c), exp.Like))

    comp2 = sum(nested(c) for c in all_conds)

    agg = sum(1 for e in select.expressions if is_aggregate(e.unalias()))
    agg += sum(1 for c in where if negated(c))
    agg += sum(1 for g in group_items if is_aggregate(g))
    for item in order_items:
        item = _unwrap(item)
        operands = [item.this, item.expression] if isinstance(item, exp.Add | exp.Sub | exp.Mul | exp.Div) else [item]
        agg += sum(1 for operand in operands if is_aggregate(operand))
    agg += sum(1 for c in having if negated(c)) + len(having_ops)
    others = int(agg > 1) + int(len(select.expressions) > 1) + int(len(where) > 1) + int(len(group_items) > 1)
    return comp1, comp2, others
