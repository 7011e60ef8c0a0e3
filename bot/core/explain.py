"""Explain an answer's SQL in plain English, read off the parsed query — never the model.

The explanation follows the order a database evaluates a query (sources and joins, row
filters, grouping, group filters, the returned columns, ordering, limit), so it says what
the SQL shown does and nothing else: every part it does not have words for is quoted as
SQL rather than paraphrased. CTEs are explained first, each under its name; subqueries in
conditions and columns are numbered and explained after the query that uses them.

>>> print(explain_sql("SELECT name FROM employees WHERE salary > 100000 ORDER BY name LIMIT 5", dialect="sqlite"))
Reads from employees.
Keeps only rows where salary is greater than 100000.
Returns name.
Sorts by name (lowest first).
Returns at most 5 rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from bot.core.types import AuditEntry
from chat2sql import messages
from schemas.glossary import GlossaryEntry, relevant

INDENT = "  "
MAX_LIST_ITEMS = 10  # values of an IN list named before "and N more"
MAX_EXPLANATION_LINES = 80

_COMPARISONS: dict[type[exp.Expr], str] = {
    exp.EQ: "equals",
    exp.NEQ: "does not equal",
    exp.GT: "is greater than",
    exp.GTE: "is at least",
    exp.LT: "is less than",
    exp.LTE: "is at most",
    exp.NullSafeEQ: "equals (NULLs matching)",
    exp.NullSafeNEQ: "does not equal (NULLs matching)",
}
_AGGREGATES: dict[type[exp.Expr], str] = {
    exp.Sum: "the total of {}",
    exp.Avg: "the average of {}",
    exp.Min: "the smallest {}",
    exp.Max: "the largest {}",
}
_RANKING: dict[type[exp.Expr], str] = {
    exp.RowNumber: "the row number",
    exp.Rank: "the rank",
    exp.DenseRank: "the dense rank",
}
_SET_OPERATIONS: dict[type[exp.Expr], str] = {
    exp.Union: "Combines the rows of two queries (UNION{all}: rows from either{dups}).",
    exp.Intersect: "Keeps the rows two queries have in common (INTERSECT{all}{dups}).",
    exp.Except: "Keeps the rows of the first query that the second does not return (EXCEPT{all}{dups}).",
}


def explain_sql(sql: str, *, dialect: str) -> str:
    """Lines of plain English; nested parts (CTEs, subqueries) indented under their name."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError:
        return messages.EXPLAIN_UNREADABLE
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        return messages.EXPLAIN_UNREADABLE
    explainer = _Explainer(dialect)
    lines = explainer.query(statements[0])
    for number, subquery in enumerate(explainer.subqueries, start=1):
        lines.append(f"Subquery {number}:")
        lines += _indent(explainer.query(subquery))
    if len(lines) > MAX_EXPLANATION_LINES:
        lines = [*lines[: MAX_EXPLANATION_LINES - 1], messages.EXPLAIN_CUT]
    return "\n".join(lines)


def explanation(answered: AuditEntry, dialect: str, glossary: Sequence[GlossaryEntry]) -> str:
    """An answer's explanation: its database, what its SQL does, and the glossary entries it used."""
    assert answered.sql is not None and answered.database is not None
    text = explain_sql(answered.sql, dialect=dialect)
    used = glossary_used(glossary, answered.sql, answered.question, dialect=dialect)
    lines = [messages.glossary_used(e.hint, e.version) for e in used]
    return "\n".join([messages.explain_title(answered.database), text, *lines])


def glossary_used(entries: Sequence[GlossaryEntry], sql: str, question: str, *, dialect: str) -> list[GlossaryEntry]:
    """The metrics the SQL computes (their expression appears in it, table names aside) and the
    terms the question concerns, metrics first.

    >>> import datetime as dt
    >>> m = GlossaryEntry(database="s", kind="metric", name="bookings", definition="SUM(sales.amount)",
    ...                   version=2, created_by="t", created_at=dt.datetime(2026, 1, 1))
    >>> [e.name for e in glossary_used([m], "SELECT SUM(s.amount) FROM sales AS s", "total?", dialect="sqlite")]
    ['bookings']
    """
    try:
        parsed = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return []
    metrics = {e: node for e in entries if e.kind == "metric" and (node := _parsed(e.definition, dialect)) is not None}
    kinds = {type(node) for node in metrics.values()}
    shapes = {_shape(node, dialect) for node in parsed.walk() if type(node) in kinds}
    used = [e for e, node in metrics.items() if _shape(node, dialect) in shapes]
    return used + [e for e in relevant(entries, question) if e.kind == "term"]


def _parsed(definition: str, dialect: str) -> exp.Expr | None:
    try:
        return sqlglot.parse_one(definition, read=dialect)
    except SqlglotError:
        return None


def _shape(node: exp.Expr, dialect: str) -> str:
    """An expression's SQL with its columns unqualified: ``SUM(s.amount)`` reads as ``SUM(sales.amount)``."""

    def bare(n: exp.Expr) -> exp.Expr:
        return exp.column(n.this.copy()) if isinstance(n, exp.Column) and n.table else n

    return node.copy().transform(bare).sql(dialect=dialect).lower()


def _indent(lines: list[str]) -> list[str]:
    return [INDENT + line for line in lines]


@dataclass
class _Explainer:
    dialect: str
    subqueries: list[exp.Query] = field(default_factory=list)

    # --- queries ------------------------------------------------------------------------------

    def query(self, node: exp.Expr) -> list[str]:
        lines: list[str] = []
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With):
            recursive = " (recursive)" if with_.args.get("recursive") else ""
            for cte in with_.expressions:
                lines.append(f"First defines {cte.alias_or_name}{recursive} as a query that:")
                lines += _indent(self.query(cte.this))
        if isinstance(node, exp.Subquery):
            return lines + self.query(node.this)
        if isinstance(node, exp.SetOperation):
            lines += self._set_operation(node)
        elif isinstance(node, exp.Select):
            lines += self._select(node)
        else:
            lines.append(f"Runs {self.sql(node)}.")
            return lines
        return lines + self._order_and_limit(node)

    def _set_operation(self, node: exp.SetOperation) -> list[str]:
        distinct = node.args.get("distinct") is not False
        template = _SET_OPERATIONS.get(type(node), "Combines two queries ({op}).")
        head = template.format(
            all="" if distinct else " ALL",
            dups=", duplicates removed" if distinct else ", duplicates kept",
            op=type(node).__name__.upper(),
        )
        lines = [head, "The first query:"]
        lines += _indent(self.query(node.this))
        lines.append("The second query:")
        lines += _indent(self.query(node.expression))
        return lines

    def _select(self, select: exp.Select) -> list[str]:
        lines = self._sources(select)
        where = select.args.get("where")
        if isinstance(where, exp.Where):
            lines += self._filter("Keeps only rows where", where.this)
        group = select.args.get("group")
        has_aggregate = any(e.find(exp.AggFunc) and not e.find(exp.Window) for e in select.expressions)
        if isinstance(group, exp.Group) and group.expressions:
            keys = _join_words([self.say(e) for e in group.expressions])
            lines.append(f"Groups the rows by {keys}, one result row per group.")
        elif isinstance(group, exp.Group):
            lines.append(f"Groups the rows: {self.sql(group)}.")
        elif has_aggregate:
            lines.append("Summarizes all of these rows into one result row.")
        having = select.args.get("having")
        if isinstance(having, exp.Having):
            lines += self._filter("Keeps only groups where", having.this)
        columns = "; ".join(self.say(e) for e in select.expressions)
        distinct = select.args.get("distinct")
        if isinstance(distinct, exp.Distinct) and distinct.args.get("on"):
            lines.append(f"Returns {columns}, keeping one row for each {self.say(distinct.args['on'])}.")
        elif distinct:
            lines.append(f"Returns {columns}, without duplicate rows.")
        else:
            lines.append(f"Returns {columns}.")
        return lines

    def _sources(self, select: exp.Select) -> list[str]:
        from_ = select.args.get("from_") or select.args.get("from")
        if not isinstance(from_, exp.From):
            return ["Reads no table: it computes its values directly."]
        lines = self._source("Reads from", from_.this, "")
        for join in select.args.get("joins") or []:
            lines += self._join(join)
        return lines

    def _source(self, verb: str, source: exp.Expr, tail: str) -> list[str]:
        if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
            return [f"{verb} {self._table(source)}{tail}."]
        if isinstance(source, exp.Subquery) and isinstance(source.this, exp.Query):
            alias = f" (as {source.alias})" if source.alias else ""
            return [f"{verb} a subquery{alias}{tail}; the subquery:", *_indent(self.query(source.this))]
        return [f"{verb} {self.sql(source)}{tail}."]

    def _join(self, join: exp.Join) -> list[str]:
        side = (join.side or "").upper()
        kind = (join.kind or "").upper()
        on, using = join.args.get("on"), join.args.get("using")
        if on is not None:
            condition = f", matching rows where {self.say(on)}"
        elif using:
            condition = f", matching rows on equal {_join_words([self.sql(u) for u in using])}"
        else:
            condition = ""
        if not condition and kind in ("", "CROSS") and not side:
            return self._source("Pairs every row with every row of", join.this, " (a cross join)")
        verbs = {
            "LEFT": ("Left-joins", "; rows of the tables before it are kept even without a match"),
            "RIGHT": ("Right-joins", "; its rows are kept even without a match"),
            "FULL": ("Full-joins", "; rows of both sides are kept even without a match"),
        }
        verb, keep = verbs.get(side, ("Joins", "" if kind in ("", "INNER") else f" ({kind} JOIN)"))
        if kind in ("SEMI", "ANTI"):
            verb, keep = "Filters against", f" ({side} {kind} JOIN)".replace("  ", " ")
        return self._source(verb, join.this, condition + keep)

    def _filter(self, head: str, condition: exp.Expr) -> list[str]:
        parts = list(_unwrap(condition).flatten()) if isinstance(_unwrap(condition), exp.And) else [condition]
        if len(parts) == 1:
            return [f"{head} {self.say(condition)}."]
        return [f"{head} all of these hold:", *(f"{INDENT}- {self.say(p)}" for p in parts)]

    def _order_and_limit(self, node: exp.Expr) -> list[str]:
        lines: list[str] = []
        order = node.args.get("order")
        if isinstance(order, exp.Order) and order.expressions:
            keys = [self._ordered(o) for o in order.expressions]
            lines.append("Sorts by " + ", then ".join(keys) + ".")
        limit, offset = node.args.get("limit"), node.args.get("offset")
        skipped = self._count(offset) if isinstance(offset, exp.Offset) else None
        skip = f", skipping the first {skipped}" if skipped else ""
        if isinstance(limit, exp.Limit | exp.Fetch):
            lines.append(f"Returns at most {self._count(limit)} rows{skip}.")
        elif skipped:
            lines.append(f"Skips the first {skipped} rows.")
        return lines

    def _ordered(self, ordered: exp.Expr) -> str:
        if not isinstance(ordered, exp.Ordered):
            return self.say(ordered)
        key = ordered.this
        what = f"column {key.this}" if isinstance(key, exp.Literal) and not key.is_string else self.say(key)
        return f"{what} ({'highest first' if ordered.args.get('desc') else 'lowest first'})"

    def _count(self, node: exp.Expr) -> str:
        value = node.args.get("expression") or node.args.get("count") or node.this
        if isinstance(value, exp.Literal) and not value.is_string:
            return str(value.this)
        return self.say(value) if isinstance(value, exp.Expr) else self.sql(node)

    # --- expressions --------------------------------------------------------------------------

    def say(self, node: exp.Expr) -> str:
        """An expression in words where there are words for it, its SQL otherwise."""
        rule = _RULES.get(type(node))
        if rule is not None:
            return rule(self, node)
        if isinstance(node, exp.AggFunc) and type(node) in _AGGREGATES:
            return _AGGREGATES[type(node)].format(self.say(node.this))
        if isinstance(node, exp.Binary) and type(node) in _COMPARISONS:
            return f"{self.say(node.this)} {_COMPARISONS[type(node)]} {self.say(node.expression)}"
        return self.sql(node)

    def sql(self, node: exp.Expr) -> str:
        return node.sql(dialect=self.dialect)

    def _table(self, table: exp.Table) -> str:
        name = ".".join(p.sql(dialect=self.dialect) for p in table.parts)
        return f"{name} (as {table.alias})" if table.alias else name

    def _subquery(self, node: exp.Expr) -> str:
        query = node.this if isinstance(node, exp.Subquery | exp.Exists) else node
        if not isinstance(query, exp.Query):
            return self.sql(node)
        self.subqueries.append(query)
        return f"subquery {len(self.subqueries)}"

    def _alias(self, node: exp.Alias) -> str:
        return f"{self.say(node.this)} (as {node.alias})"

    def _star(self, node: exp.Star) -> str:
        return "every column"

    def _column(self, node: exp.Column) -> str:
        if isinstance(node.this, exp.Star):
            return f"every column of {node.table}"
        return self.sql(node)

    def _null(self, node: exp.Null) -> str:
        return "NULL"

    def _paren(self, node: exp.Paren) -> str:
        inner = node.this
        if isinstance(inner, exp.Connector):
            return f"({self.say(inner)})"
        return self.say(inner)

    def _and(self, node: exp.And) -> str:
        return " and ".join(self._operand(p) for p in node.flatten())

    def _or(self, node: exp.Or) -> str:
        return " or ".join(self._operand(p) for p in node.flatten())

    def _operand(self, node: exp.Expr) -> str:
        text = self.say(node)
        inner = _unwrap(node)
        return f"({text})" if isinstance(inner, exp.Connector) and not isinstance(node, exp.Paren) else text

    def _not(self, node: exp.Not) -> str:
        inner = _unwrap(node.this)
        if isinstance(inner, exp.Is):
            return self._is(inner, negate=True)
        if isinstance(inner, exp.In):
            return self._in(inner, negate=True)
        if isinstance(inner, exp.Like | exp.ILike):
            return self._like(inner, negate=True)
        if isinstance(inner, exp.Between):
            return self._between(inner, negate=True)
        if isinstance(inner, exp.Exists):
            return f"no row exists in {self._subquery(inner)}"
        return f"not ({self.say(inner)})"

    def _is(self, node: exp.Is, *, negate: bool = False) -> str:
        target = node.expression
        if isinstance(target, exp.Null):
            return f"{self.say(node.this)} is {'not ' if negate else ''}empty (NULL)"
        return f"{self.say(node.this)} is {'not ' if negate else ''}{self.sql(target)}"

    def _in(self, node: exp.In, *, negate: bool = False) -> str:
        head = f"{self.say(node.this)} is {'not ' if negate else ''}one of"
        query = node.args.get("query")
        if query is not None:
            return f"{head} the values returned by {self._subquery(query)}"
        values = [self.say(v) for v in node.expressions]
        more = len(values) - MAX_LIST_ITEMS
        shown = ", ".join(values[:MAX_LIST_ITEMS]) + (f" and {more} more" if more > 0 else "")
        return f"{head} {shown}"

    def _like(self, node: exp.Like | exp.ILike, *, negate: bool = False) -> str:
        negate = negate != bool(node.args.get("negate"))
        case = " (ignoring case)" if isinstance(node, exp.ILike) else ""
        verb = "does not match" if negate else "matches"
        return f"{self.say(node.this)} {verb} the pattern {self.sql(node.expression)}{case}"

    def _between(self, node: exp.Between, *, negate: bool = False) -> str:
        low, high = self.say(node.args["low"]), self.say(node.args["high"])
        return f"{self.say(node.this)} is {'not ' if negate else ''}between {low} and {high}"

    def _exists(self, node: exp.Exists) -> str:
        return f"a row exists in {self._subquery(node)}"

    def _count_rows(self, node: exp.Count) -> str:
        target = node.this
        if target is None or isinstance(target, exp.Star):
            return "the number of rows"
        if isinstance(target, exp.Distinct):
            return f"the number of distinct {_join_words([self.say(e) for e in target.expressions])}"
        return f"the number of rows with a {self.say(target)}"

    def _window(self, node: exp.Window) -> str:
        func = node.this
        what = _RANKING.get(type(func)) or self.say(func)
        partition = node.args.get("partition_by") or []
        order = node.args.get("order")
        parts = [f"{what}, computed"]
        parts.append(f"within each {_join_words([self.say(p) for p in partition])}" if partition else "over all rows")
        if isinstance(order, exp.Order) and order.expressions:
            parts.append("in order of " + ", then ".join(self._ordered(o) for o in order.expressions))
        spec = node.args.get("spec")
        if spec is not None:
            parts.append(f"({self.sql(spec)})")
        return " ".join(parts)


_RULES: dict[type[exp.Expr], Callable[[_Explainer, exp.Expr], str]] = {
    exp.Alias: _Explainer._alias,  # type: ignore[dict-item]
    exp.Star: _Explainer._star,  # type: ignore[dict-item]
    exp.Column: _Explainer._column,  # type: ignore[dict-item]
    exp.Null: _Explainer._null,  # type: ignore[dict-item]
    exp.Paren: _Explainer._paren,  # type: ignore[dict-item]
    exp.And: _Explainer._and,  # type: ignore[dict-item]
    exp.Or: _Explainer._or,  # type: ignore[dict-item]
    exp.Not: _Explainer._not,  # type: ignore[dict-item]
    exp.Is: _Explainer._is,  # type: ignore[dict-item]
    exp.In: _Explainer._in,  # type: ignore[dict-item]
    exp.Like: _Explainer._like,  # type: ignore[dict-item]
    exp.ILike: _Explainer._like,  # type: ignore[dict-item]
    exp.Between: _Explainer._between,  # type: ignore[dict-item]
    exp.Exists: _Explainer._exists,  # type: ignore[dict-item]
    exp.Count: _Explainer._count_rows,  # type: ignore[dict-item]
    exp.Window: _Explainer._window,  # type: ignore[dict-item]
    exp.Subquery: _Explainer._subquery,
}


def _unwrap(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
