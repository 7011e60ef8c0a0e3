"""Schema repairs: a query that names a table or column the schema does not have, mended
the ways a small model's mistakes usually go, as new candidates for the guard to check.

The guard only requalifies a column when exactly one joined table has it
(``repair_qualifiers``); it never guesses. When every candidate the model wrote failed on
such a name, these repairs propose what the query most likely meant, one problem at a time:

- a table name the schema lacks, read as the closest one (``singers`` as ``singer``);
- an alias whose table lacks columns read through it, read from the table that has them
  all (``T2.Name, T2.Capacity`` on ``singer_in_concert``: ``stadium``);
- a column pinned on a table that lacks it, read from another joined table that has it, or
  from a table joined on for it along a foreign key (``T1.fname`` on ``Pets``: ``Student``,
  joined through ``Has_Pet.StuID``);
- a misspelt column, read as the closest column of its table (``stadium_name``: ``Name``).

A repair is only a proposal: the guard checks it as it checks the model's own SQL, the
database runs it read-only, and the notes say what was changed.

>>> from schemas.model import Column, DatabaseSchema, ForeignKey, Table
>>> pets = Table(name="Pets", columns=(Column(name="PetID", type="INT"), Column(name="PetType", type="TEXT")))
>>> has = Table(name="Has_Pet", columns=(Column(name="StuID", type="INT"), Column(name="PetID", type="INT")),
...             foreign_keys=(ForeignKey(columns=("StuID",), ref_table="Student", ref_columns=("StuID",)),))
>>> student = Table(name="Student", columns=(Column(name="StuID", type="INT"), Column(name="Fname", type="TEXT")))
>>> s = DatabaseSchema(dialect="sqlite", tables=(pets, has, student))
>>> sql = "SELECT T1.fname FROM Pets AS T1 JOIN Has_Pet AS T2 ON T1.PetID = T2.PetID"
>>> [mended] = repairs(sql, s)
>>> mended.sql.split(" FROM ")[0], mended.sql.split("T2.PetID ")[1]
('SELECT Student.Fname', 'JOIN Student ON T2.StuID = Student.StuID')
>>> mended.notes
('T1.fname read from Student, joined to T2',)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope

from schemas.guard.scopes import schema_table, sources_in, unknown_columns
from schemas.model import DatabaseSchema, Table

MAX_REPAIRS = 3  # mended queries per failed one
MAX_STEPS = 4  # problems mended in one query: more means the query meant something else
MAX_EXPANSIONS = 24  # partial repairs tried per query
CLOSE = 0.75  # difflib ratio for a misspelt name


@dataclass(frozen=True, kw_only=True)
class Repair:
    sql: str
    notes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class _Problem:
    kind: str  # "table", "qualified" or "bare"
    node: exp.Expr  # the exp.Table or exp.Column
    scope: Scope | None = None


def repairs(sql: str, schema: DatabaseSchema, *, limit: int = MAX_REPAIRS) -> list[Repair]:
    """Up to ``limit`` mended versions of ``sql`` in which no table or column is unknown,
    the most likely first; [] when ``sql`` has no such problem, does not parse, or has a
    problem none of the rules above mends."""
    try:
        tree = sqlglot.parse_one(sql, read=schema.dialect)
    except SqlglotError:
        return []
    if tree is None or _first_problem(tree, schema) is None:
        return []
    found: list[Repair] = []
    seen: set[str] = set()
    stack: list[tuple[exp.Expr, tuple[str, ...]]] = [(tree, ())]
    expansions = 0
    while stack and len(found) < limit and expansions < MAX_EXPANSIONS:
        current, notes = stack.pop()
        expansions += 1
        try:
            problem = _first_problem(current, schema)
        except SqlglotError:
            continue
        if problem is None:
            text = current.sql(dialect=schema.dialect)
            if text not in seen:
                seen.add(text)
                found.append(Repair(sql=text, notes=notes))
            continue
        if len(notes) >= MAX_STEPS:
            continue
        options = list(_options(current, problem, schema))
        # depth first, the most likely option on top of the stack
        stack.extend((mended, (*notes, note)) for mended, note in reversed(options))
    return found


# --- finding the first unknown name ---------------------------------------------------------


def _first_problem(tree: exp.Expr, schema: DatabaseSchema) -> _Problem | None:
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or table.args.get("catalog"):
            continue
        if table.args.get("db") is None and table.name.lower() in ctes:
            continue
        if schema_table(table, schema) is None:
            return _Problem(kind="table", node=table)
    for scope, column, source in unknown_columns(tree, schema):
        if source is None:
            if column.this.quoted and schema.dialect in ("sqlite", "mysql"):
                continue  # may be a string literal: the guard's literal rule decides
            return _Problem(kind="bare", node=column, scope=scope)
        if isinstance(source, exp.Table):
            return _Problem(kind="qualified", node=column, scope=scope)
    return None


# --- the ways to mend one problem, most likely first -----------------------------------------


def _options(tree: exp.Expr, problem: _Problem, schema: DatabaseSchema) -> Iterator[tuple[exp.Expr, str]]:
    if problem.kind == "table":
        yield from _renamed_tables(tree, problem.node, schema)
        return
    assert isinstance(problem.node, exp.Column) and problem.scope is not None
    yield from _column_options(tree, problem.node, problem.scope, schema)


def _renamed_tables(tree: exp.Expr, node: exp.Expr, schema: DatabaseSchema) -> Iterator[tuple[exp.Expr, str]]:
    assert isinstance(node, exp.Table)
    names = {t.name: t for t in schema.tables}
    for name in difflib.get_close_matches(node.name, list(names), n=2, cutoff=0.6):
        path = _path(tree, node)
        mended = tree.copy()
        target = _at(mended, path)
        assert isinstance(target, exp.Table)
        written = target.name
        if not target.alias:  # references written as ``singers.name`` keep working
            target.set("alias", exp.TableAlias(this=exp.to_identifier(written)))
        target.set("this", exp.to_identifier(name))
        target.set("db", None)
        yield mended, f"table {written} read as {name}"


def _column_options(
    tree: exp.Expr, column: exp.Column, scope: Scope, schema: DatabaseSchema
) -> Iterator[tuple[exp.Expr, str]]:
    ident = column.this
    assert isinstance(ident, exp.Identifier)
    tables = _scope_tables(scope, schema)  # alias -> schema table, for this scope's own tables
    qualifier = column.table
    if qualifier and qualifier in tables:
        yield from _swapped(tree, scope, qualifier, tables, schema)
    holders = [a for a, t in tables.items() if a != qualifier and schema.find_column(t, ident.name)]
    for alias in holders:
        yield _requalified(tree, column, alias, ident.name), f"{_written(column)} read as {alias}.{ident.name}"
    if not holders:
        yield from _joined(tree, column, scope, tables, schema)
    yield from _renamed_columns(tree, column, tables, schema)


def _scope_tables(scope: Scope, schema: DatabaseSchema) -> dict[str, Table]:
    out: dict[str, Table] = {}
    for alias, source in sources_in(scope).items():
        if isinstance(source, exp.Table):
            table = schema_table(source, schema)
            if table is not None:
                out[alias] = table
    return out


def _swapped(
    tree: exp.Expr, scope: Scope, qualifier: str, tables: dict[str, Table], schema: DatabaseSchema
) -> Iterator[tuple[exp.Expr, str]]:
    """The alias read from the table that has every column the query reads through it."""
    current = tables[qualifier]
    wanted = {c.name for c in tree.find_all(exp.Column) if c.table == qualifier and isinstance(c.this, exp.Identifier)}
    fits = [t for t in schema.tables if t is not current and all(schema.find_column(t, n) for n in wanted)]
    used = {id(t) for t in tables.values()}
    near = {t.name.lower() for t in tables.values()}
    fits.sort(key=lambda t: (id(t) in used, not near & {fk.ref_table.lower() for fk in t.foreign_keys}))
    source = sources_in(scope).get(qualifier)
    for table in fits[:2]:
        assert isinstance(source, exp.Table)
        mended = tree.copy()
        target = _at(mended, _path(tree, source))
        assert isinstance(target, exp.Table)
        if not target.alias:
            target.set("alias", exp.TableAlias(this=exp.to_identifier(qualifier)))
        target.set("this", exp.to_identifier(table.name))
        target.set("db", None)
        yield mended, f"{qualifier} read from {table.name} instead of {current.name}"


def _joined(
    tree: exp.Expr, column: exp.Column, scope: Scope, tables: dict[str, Table], schema: DatabaseSchema
) -> Iterator[tuple[exp.Expr, str]]:
    """The column read from a table joined on for it: along a foreign key (or a shared key
    column) from a table in scope, the column's own alias first, or through one bridge table
    (``Student`` to ``Pets`` through ``Has_Pet``). Tables that also hold the alias's other
    missing columns come first, and those columns move with it."""
    ident = column.this
    assert isinstance(ident, exp.Identifier)
    select = scope.expression
    if not isinstance(select, exp.Select) or not tables:
        return
    in_scope = {id(t) for t in tables.values()}
    order = sorted(tables.items(), key=lambda item: item[0] != column.table)
    siblings = _missing_through(tree, column, tables, schema)
    holders = [t for t in schema.tables if id(t) not in in_scope and schema.find_column(t, ident.name) is not None]
    holders.sort(key=lambda t: -sum(schema.find_column(t, c.name) is not None for c in siblings))
    yielded = 0
    for table in holders:
        path = _join_path(table, order, in_scope, schema)
        if path is None:
            continue
        mended = tree.copy()
        target = _at(mended, _path(tree, select))
        assert isinstance(target, exp.Select)
        moved = [c for c in siblings if schema.find_column(table, c.name) is not None]
        paths = [_path(tree, c) for c in moved]
        alias, steps = path
        near_alias, names = alias, []
        for near_col, far, far_col in steps:
            far_alias = _fresh_alias(target, far.name)
            on = exp.EQ(
                this=exp.column(near_col, table=near_alias, quoted=_quoted(near_alias)),
                expression=exp.column(far_col, table=far_alias, quoted=_quoted(far_alias)),
            )
            source = exp.Table(this=exp.to_identifier(far.name, quoted=_quoted(far.name)))
            if far_alias != far.name:
                source.set("alias", exp.TableAlias(this=exp.to_identifier(far_alias)))
            target.append("joins", exp.Join(this=source, on=on))
            near_alias = far_alias
            names.append(far.name)
        for sibling, where in zip(moved, paths, strict=True):
            name = _name_in(table, sibling.name, schema)
            _at(mended, where).replace(exp.column(name, table=near_alias, quoted=_quoted(near_alias)))
        through = f" through {names[0]}" if len(names) > 1 else ""
        written = " and ".join(dict.fromkeys(_written(c) for c in moved))
        yield mended, f"{written} read from {table.name}, joined to {alias}{through}"
        yielded += 1
        if yielded >= 2:
            return


def _missing_through(
    tree: exp.Expr, column: exp.Column, tables: dict[str, Table], schema: DatabaseSchema
) -> list[exp.Column]:
    """``column`` and, for a qualified one, every other column read through its alias that
    the alias's table lacks (``T2.Name`` and ``T2.Capacity``)."""
    table = tables.get(column.table) if column.table else None
    if table is None:
        return [column]
    found = [column]
    for other in tree.find_all(exp.Column):
        if other is column or other.table != column.table or not isinstance(other.this, exp.Identifier):
            continue
        if schema.find_column(table, other.name, quoted=other.this.quoted) is None:
            found.append(other)
    return found


def _join_path(
    far: Table, order: list[tuple[str, Table]], in_scope: set[int], schema: DatabaseSchema
) -> tuple[str, list[tuple[str, Table, str]]] | None:
    """(alias in scope, [(near column, table, its column), ...]) to reach ``far``: one join
    where a table in scope links to it, else two through a bridge table not in scope."""
    for alias, near in order:
        link = _link(far, near, schema)
        if link is not None:
            return alias, [(link[0], far, link[1])]
    for alias, near in order:
        for bridge in schema.tables:
            if id(bridge) in in_scope or bridge is far:
                continue
            first, second = _link(bridge, near, schema), _link(far, bridge, schema)
            if first is not None and second is not None:
                return alias, [(first[0], bridge, first[1]), (second[0], far, second[1])]
    return None


def _renamed_columns(
    tree: exp.Expr, column: exp.Column, tables: dict[str, Table], schema: DatabaseSchema
) -> Iterator[tuple[exp.Expr, str]]:
    """A misspelt column read as the closest column of its table (of the scope's tables,
    for a bare one), also with the table's name taken off (``stadium_name``: ``Name``)."""
    ident = column.this
    assert isinstance(ident, exp.Identifier)
    pool = [tables[column.table]] if column.table in tables else list(tables.values())
    names = {c.name.lower(): c.name for t in pool for c in t.columns}
    wanted = ident.name.lower()
    tries = [wanted]
    for table in pool:
        for prefix in (table.name.lower(), table.name.lower().rstrip("s")):
            if wanted.startswith(prefix + "_") and len(wanted) > len(prefix) + 1:
                tries.append(wanted[len(prefix) + 1 :])
    for attempt in tries:
        for close in difflib.get_close_matches(attempt, list(names), n=1, cutoff=CLOSE):
            name = names[close]
            if name.lower() == wanted:
                continue
            mended = tree.copy()
            _at(mended, _path(tree, column)).this.set("this", name)
            yield mended, f"{_written(column)} read as {name}"
            return


# --- small helpers ----------------------------------------------------------------------------


def _link(far: Table, near: Table, schema: DatabaseSchema) -> tuple[str, str] | None:
    """(near column, far column) to join ``far`` on from ``near``: a foreign key either way,
    else a column both have that is the primary key of one of them."""
    for fk in near.foreign_keys:
        if fk.ref_table.lower() == far.name.lower() and len(fk.columns) == 1 and len(fk.ref_columns) == 1:
            return fk.columns[0], _name_in(far, fk.ref_columns[0], schema)
    for fk in far.foreign_keys:
        if fk.ref_table.lower() == near.name.lower() and len(fk.columns) == 1 and len(fk.ref_columns) == 1:
            return _name_in(near, fk.ref_columns[0], schema), fk.columns[0]
    for column in near.columns:
        other = schema.find_column(far, column.name)
        if other is None:
            continue
        keys = {k.lower() for k in (*near.primary_key, *far.primary_key)}
        if column.name.lower() in keys and column.name.lower() != "id":  # every table's "id" links nothing
            return column.name, other.name
    return None


def _name_in(table: Table, name: str, schema: DatabaseSchema) -> str:
    column = schema.find_column(table, name)
    return column.name if column is not None else name


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quoted(name: str) -> bool:
    return not _PLAIN.match(name)


def _fresh_alias(tree: exp.Expr, name: str) -> str:
    used = {n.lower() for t in tree.find_all(exp.Table) for n in (t.name, t.alias) if n}
    used |= {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    if name.lower() not in used:
        return name
    for n in range(1, 100):
        candidate = f"J{n}"
        if candidate.lower() not in used:
            return candidate
    return f"J_{len(used)}"


def _requalified(tree: exp.Expr, column: exp.Column, alias: str, name: str) -> exp.Expr:
    mended = tree.copy()
    target = _at(mended, _path(tree, column))
    assert isinstance(target, exp.Column)
    target.set("table", exp.to_identifier(alias))
    return mended


def _written(column: exp.Column) -> str:
    return f"{column.table}.{column.name}" if column.table else column.name


def _path(root: exp.Expr, node: exp.Expr) -> list[tuple[str, int | None]]:
    """How to reach ``node`` from ``root``: (arg key, index) pairs, for the same node in a copy."""
    steps: list[tuple[str, int | None]] = []
    current = node
    while current is not root:
        parent, arg = current.parent, current.arg_key
        assert parent is not None and arg is not None, "node is not under root"
        value = parent.args.get(arg)
        steps.append((arg, current.index if isinstance(value, list) else None))
        current = parent
    return list(reversed(steps))


def _at(root: exp.Expr, path: list[tuple[str, int | None]]) -> exp.Expr:
    node = root
    for arg, index in path:
        value = node.args[arg]
        node = value[index] if index is not None else value
    return node


__all__ = ["MAX_REPAIRS", "Repair", "repairs"]
