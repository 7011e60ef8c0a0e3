"""Which column names a reference can see, scope by scope: what the literal rule and the
unknown-column message both ask.

Answers over-approximate: where a source's columns cannot be known (a table function, a
table the schema lacks, a recursive CTE) the answer is ``None``, "anything may resolve",
so that no caller ever treats a possible column as something else.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope, walk_in_scope

from schemas.dialects import Dialect, fold_column
from schemas.model import DatabaseSchema, Table

# A subquery, a branch of a set operation, a table function's arguments and a LATERAL
# derived table also see the enclosing query's sources; a plain derived table, a CTE and
# the root do not.
_SEES_OUTER = (ScopeType.SUBQUERY, ScopeType.SET_OPERATION, ScopeType.UDTF)
_SQLITE_ROWID = frozenset({"rowid", "oid", "_rowid_"})
_MAX_DEPTH = 50  # derived tables of derived tables: far beyond any real query


def columns_by_scope(tree: exp.Expr) -> Iterator[tuple[Scope, exp.Column]]:
    """Each column once, with the innermost scope that reads it (``traverse_scope`` yields
    children first). ``Scope.columns`` leaves out bare names in HAVING, QUALIFY and ORDER BY
    that may be select-list aliases: the walk within the scope adds them back."""
    seen: set[int] = set()
    try:
        scopes = traverse_scope(tree)
    except SqlglotError:
        return
    for scope in scopes:
        own = (node for node in walk_in_scope(scope.expression) if isinstance(node, exp.Column))
        for column in itertools.chain(scope.columns, own):
            if id(column) not in seen:
                seen.add(id(column))
                yield scope, column


def reachable(scope: Scope) -> Iterator[Scope]:
    """``scope`` and every enclosing scope whose sources a reference in it may name."""
    current: Scope | None = scope
    while current is not None:
        yield current
        sees_outer = current.scope_type in _SEES_OUTER or bool(current.can_be_correlated)
        current = current.parent if sees_outer else None


def sources_in(scope: Scope) -> dict[str, exp.Expr | Scope]:
    """The FROM items a reference in ``scope`` can name, by alias, LATERAL's earlier ones too."""
    found: dict[str, exp.Expr | Scope] = dict(scope.lateral_sources)
    found.update({name: source for name, (_node, source) in scope.selected_sources.items()})
    return found


def qualifier_source(scope: Scope, qualifier: str) -> exp.Expr | Scope | None:
    """What an alias or table name stands for, in this scope or (for a subquery) an outer one."""
    for current in reachable(scope):
        source = sources_in(current).get(qualifier)
        if source is not None:
            return source
    return None


Unknown = tuple[Scope, exp.Column, exp.Expr | Scope | None]


def unknown_columns(tree: exp.Expr, schema: DatabaseSchema) -> Iterator[Unknown]:
    """Each column that no source in its scope has, in order, with the source its qualifier
    names (``None`` for a bare column): what the unknown-column message and the schema
    repairs both start from."""
    for scope, column in columns_by_scope(tree):
        ident = column.this
        if not isinstance(ident, exp.Identifier):
            continue
        if not column.table:
            visible = visible_names(scope, column, schema)
            if visible is not None and key(schema.dialect, ident) not in visible:
                yield scope, column, None
            continue
        source = qualifier_source(scope, column.table)
        if isinstance(source, exp.Table):
            table = schema_table(source, schema)
            if table is not None and schema.find_column(table, ident.name, quoted=ident.quoted) is None:
                yield scope, column, source
        elif source is not None:
            names = source_names(source, schema)
            if names is not None and key(schema.dialect, ident) not in names:
                yield scope, column, source


def key(dialect: Dialect, ident: exp.Identifier) -> str:
    """The name under which the engine matches the identifier against a column."""
    return fold_column(dialect, ident.name, quoted=ident.quoted)


def column_keys(dialect: Dialect, table: Table) -> set[str]:
    return {fold_column(dialect, c.name, quoted=True) for c in table.columns}


def schema_table(source: exp.Table, schema: DatabaseSchema) -> Table | None:
    ident = source.this
    if not isinstance(ident, exp.Identifier):
        return None
    db = source.args.get("db")
    return schema.find_table(ident.name, db.name if isinstance(db, exp.Identifier) else None, quoted=ident.quoted)


def visible_names(scope: Scope, column: exp.Column, schema: DatabaseSchema) -> set[str] | None:
    """Every name an unqualified ``column`` read in ``scope`` could resolve to: the columns
    of the sources in scope (and of enclosing queries, for a subquery), the select-list
    aliases outside the select list, a set operation's output names in its ORDER BY."""
    names: set[str] = set()
    for current in reachable(scope):
        for source in sources_in(current).values():
            found = source_names(source, schema)
            if found is None:
                return None
            names |= found
    names |= _alias_names(scope, column, schema.dialect)
    if schema.dialect == "sqlite" and scope.selected_sources:
        names |= _SQLITE_ROWID
    return names


def source_names(source: exp.Expr | Scope, schema: DatabaseSchema, depth: int = 0) -> set[str] | None:
    """The column names a FROM source offers, or ``None`` when they cannot be known."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(source, exp.Table):
        table = schema_table(source, schema)
        return None if table is None else column_keys(schema.dialect, table)
    if not isinstance(source, Scope):
        return None
    declared = _declared_columns(source.expression, schema.dialect)
    if declared is not None:
        return declared
    return _output_names(source, schema, depth)


def _declared_columns(query: exp.Expr, dialect: Dialect) -> set[str] | None:
    """``WITH c(a, b) AS …`` and ``(…) AS t(a, b)`` rename the outputs."""
    holder = query.parent
    alias = holder.args.get("alias") if isinstance(holder, (exp.CTE, exp.Subquery)) else None
    if isinstance(alias, exp.TableAlias) and alias.columns:
        return {key(dialect, c) for c in alias.columns if isinstance(c, exp.Identifier)}
    return None


def _output_names(scope: Scope, schema: DatabaseSchema, depth: int) -> set[str] | None:
    if isinstance(scope.expression, exp.SetOperation):
        branches = scope.set_operation_scopes
        return _output_names(branches[0], schema, depth + 1) if branches else None
    if not isinstance(scope.expression, exp.Select):
        return None
    names: set[str] = set()
    for item in scope.expression.expressions:
        found = _item_names(item, scope, schema, depth)
        if found is None:
            return None
        names |= found
    return names


def _item_names(item: exp.Expr, scope: Scope, schema: DatabaseSchema, depth: int) -> set[str] | None:
    d = schema.dialect
    if isinstance(item, exp.Star):
        names: set[str] = set()
        for _name, (_node, source) in scope.selected_sources.items():
            found = source_names(source, schema, depth + 1)
            if found is None:
                return None
            names |= found
        return names
    if isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
        selected = scope.selected_sources.get(item.table)
        return None if selected is None else source_names(selected[1], schema, depth + 1)
    if isinstance(item, exp.Alias) and isinstance(item.args.get("alias"), exp.Identifier):
        return {key(d, item.args["alias"])}
    if isinstance(item, exp.Column) and isinstance(item.this, exp.Identifier):
        return {key(d, item.this)}
    return {fold_column(d, item.output_name, quoted=True)} if item.output_name else set()


def _alias_names(scope: Scope, column: exp.Column, dialect: Dialect) -> set[str]:
    query = scope.expression
    if isinstance(query, exp.SetOperation):
        return {fold_column(dialect, n, quoted=True) for n in query.named_selects}
    if not isinstance(query, exp.Select) or _in_select_list(column, query):
        return set()
    return {
        key(dialect, item.args["alias"])
        for item in query.expressions
        if isinstance(item, exp.Alias) and isinstance(item.args.get("alias"), exp.Identifier)
    }


def _in_select_list(column: exp.Column, query: exp.Select) -> bool:
    node: exp.Expr | None = column
    while node is not None and node.parent is not query:
        node = node.parent
    return node is not None and node.arg_key == "expressions"
