"""Double-quoted names that name no column: read as the strings the engine reads them as.

SQLite takes ``"x"`` for the string ``'x'`` where no column ``x`` is in scope, and Spider's
gold queries rely on it (``WHERE hometown != "little lever urban district"``); MySQL in
its default mode reads every ``"x"`` as a string (sqlglot's MySQL parser already does).
The guard writes such a name out as a single-quoted literal, with a note, so that what
runs says what it means and every later rule sees a plain string.

Where a double-quoted name is more likely a mistyped column than a value it stays a
column, and ``known_columns`` refuses it as before: when it matches a column in scope up
to case and spacing (``"OrderID"`` for ``"Order ID"``), when it is a whole output column
or sort/group key (``SELECT "Salary" …``), when it is compared with no column at all
(``"nme" = 1``) and, on PostgreSQL, everywhere but the value side of a comparison, an
``IN`` list or ``BETWEEN`` bounds (PostgreSQL itself never reads ``"x"`` as a string).

>>> from schemas import guard
>>> from schemas.model import Column, DatabaseSchema, Table
>>> s = DatabaseSchema(dialect="sqlite", tables=(Table(name="t", columns=(Column(name="city", type="TEXT"),)),))
>>> r = guard.check('select city from t where city = "New York"', s)
>>> r.normalized, r.warnings
("SELECT city FROM t WHERE city = 'New York' LIMIT 50", ('"New York" read as the string \\'New York\\'',))
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from schemas.dialects import fold_column
from schemas.guard.generate import to_sql
from schemas.guard.scopes import columns_by_scope, visible_names

if TYPE_CHECKING:
    from schemas.guard.rules import GuardContext

DOUBLE_QUOTED = "c2s_double_quoted"  # meta key set at parse time on nodes written as "…"

_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.GT, exp.LTE, exp.GTE, exp.Like, exp.ILike)
_NOT_NAME_CHARS = re.compile(r"[\W_]+")


def mark_double_quoted(tree: exp.Expr, sql: str) -> None:
    """Remember which identifiers and strings the text spelled with double quotes.

    Only ``"`` falls back to a string: backticks and brackets are always identifiers, and
    the AST alone does not tell them apart."""
    for node in tree.walk():
        if _quoted(node):
            start = node.meta.get("start")
            if isinstance(start, int) and 0 <= start < len(sql) and sql[start] == '"':
                node.meta[DOUBLE_QUOTED] = True


def _quoted(node: exp.Expr) -> bool:
    if isinstance(node, exp.Identifier):
        return bool(node.quoted)
    return isinstance(node, exp.Literal) and node.is_string


def string_literals(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """``"x"`` used as a column where no column ``x`` is in scope becomes ``'x'``, with a note."""
    for literal in tree.find_all(exp.Literal):
        if literal.meta.get(DOUBLE_QUOTED):  # already a string (MySQL's own reading)
            _note(ctx, literal.this)
    if not any(ident.meta.get(DOUBLE_QUOTED) for ident in tree.find_all(exp.Identifier)):
        return tree  # nothing to resolve: spare the scope walk
    unresolved = [(scope, c) for scope, c in columns_by_scope(tree) if _unresolved(scope, c, ctx)]
    unresolved_ids = {id(column) for _scope, column in unresolved}
    for _scope, column in unresolved:
        if _reads_as_value(column, ctx, unresolved_ids):
            name = column.this.name
            column.replace(exp.Literal.string(name))
            _note(ctx, name)
    return tree


def _note(ctx: GuardContext, name: str) -> None:
    quoted = '"' + name.replace('"', '""') + '"'
    note = f"{quoted} read as the string {to_sql(exp.Literal.string(name), ctx.dialect)}"
    if note not in ctx.notes:
        ctx.notes.append(note)


def _unresolved(scope: Scope, column: exp.Column, ctx: GuardContext) -> bool:
    """A bare double-quoted name that no column, alias or output name in scope matches."""
    ident = column.this
    if not (isinstance(ident, exp.Identifier) and ident.meta.get(DOUBLE_QUOTED)):
        return False
    if column.args.get("table") or isinstance(column.parent, exp.Dot):
        return False
    visible = visible_names(scope, column, ctx.schema)
    if visible is None or fold_column(ctx.dialect, ident.name, quoted=True) in visible:
        return False
    loose = _loose(ident.name)
    return not any(_loose(name) == loose for name in visible)


def _loose(name: str) -> str:
    """``Order ID``, ``order_id`` and ``OrderID`` alike: a near miss is a mistyped column."""
    return _NOT_NAME_CHARS.sub("", name).lower()


def _reads_as_value(column: exp.Column, ctx: GuardContext, unresolved: set[int]) -> bool:
    """A comparison's value side, where the other side reads a real column; elsewhere, on
    SQLite and MySQL only, any place but a whole output column or sort/group key."""
    node, parent = _unparen(column)
    if parent is None:
        return False
    if isinstance(parent, _COMPARISONS):
        return _reads_column(parent.expression if parent.this is node else parent.this, unresolved)
    if _in_list_or_bounds(node, parent):
        return _reads_column(parent.this, unresolved)
    if ctx.dialect == "postgres":
        return False
    if isinstance(parent, exp.Select) and node.arg_key == "expressions":
        return False
    return not isinstance(parent, (exp.Ordered, exp.Group))


def _reads_column(side: object, unresolved: set[int]) -> bool:
    """Two constants compared are never meant: the other side must read a column."""
    return isinstance(side, exp.Expr) and any(
        isinstance(c, exp.Column) and id(c) not in unresolved for c in side.walk()
    )


def _in_list_or_bounds(node: exp.Expr, parent: exp.Expr) -> bool:
    """``x IN ("a", "b")`` and ``x BETWEEN "a" AND "b"``: the values, not the ``x``."""
    if isinstance(parent, exp.In):
        return node.arg_key == "expressions"
    return isinstance(parent, exp.Between) and node.arg_key in ("low", "high")


def _unparen(node: exp.Expr) -> tuple[exp.Expr, exp.Expr | None]:
    parent = node.parent
    while isinstance(parent, exp.Paren):
        node, parent = parent, parent.parent
    return node, parent
