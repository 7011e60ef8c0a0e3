"""The guard's rules: small functions, each checking one thing.

A rule takes the statement's AST and the context and returns the (possibly rewritten)
AST, or raises ``Rejection`` with a short user-facing reason; the pipeline names the
rule in the final ``GuardRejected``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.schema import MappingSchema

from schemas.dialects import Dialect, fold_column
from schemas.guard import functions
from schemas.guard.denylist import is_denied
from schemas.guard.fixups import fix_up
from schemas.guard.literals import string_literals
from schemas.guard.scopes import schema_table, unknown_columns
from schemas.model import DatabaseSchema, Table


class Rejection(Exception):
    def __init__(self, reason: str, *, rule: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rule = rule


@dataclass(frozen=True, kw_only=True)
class GuardContext:
    schema: DatabaseSchema
    max_rows: int
    extra_functions: tuple[str, ...] = ()  # an admin's additions to the allowlist, lower-case
    notes: list[str] = field(default_factory=list)  # rewrites worth telling the user about

    @property
    def dialect(self) -> Dialect:
        return self.schema.dialect


Rule = Callable[[exp.Expr, GuardContext], exp.Expr]
TextRule = Callable[[str, Dialect], None]

# Statements that start with one of these words write or change state; they are refused
# before parsing, so that a statement sqlglot cannot parse still gets the right reason.
_STATE_KEYWORDS = frozenset(
    """INSERT UPDATE DELETE REPLACE MERGE UPSERT CREATE DROP ALTER TRUNCATE RENAME COMMENT
    GRANT REVOKE SET RESET LOAD HANDLER CALL DO EXEC EXECUTE PREPARE DEALLOCATE NOTIFY
    LISTEN UNLISTEN COPY IMPORT REASSIGN SECURITY RELEASE SAVEPOINT COMMIT ROLLBACK BEGIN
    START END ABORT XA LOCK UNLOCK INSTALL UNINSTALL REPAIR OPTIMIZE ANALYZE VACUUM ATTACH
    DETACH PRAGMA REINDEX CLUSTER REFRESH DISCARD CHECKPOINT FLUSH KILL PURGE SHUTDOWN USE
    CACHE UNCACHE""".split()  # noqa: SIM905 - a word list reads better as text
)
_EXECUTABLE_COMMENT = re.compile(r"/\*\s*(?:!|M!)")

_QUERY_ROOTS = (exp.Select, exp.SetOperation)
_WRITES_OR_STATE = (
    exp.DML,
    exp.DDL,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Merge,
    exp.Into,
    exp.Command,
    exp.Pragma,
    exp.Set,
    exp.Attach,
    exp.Detach,
    exp.Copy,
    exp.Grant,
    exp.Revoke,
    exp.Use,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.LoadData,
    exp.Analyze,
    exp.Kill,
    exp.Cache,
    exp.Uncache,
    exp.Refresh,
    exp.Comment,
    exp.Declare,
    exp.Execute,
    exp.Describe,
    exp.Summarize,
    exp.Show,
)


def no_executable_comments(sql: str, dialect: Dialect) -> None:
    """MySQL/MariaDB run the inside of ``/*! … */`` and ``/*M! … */`` comments."""
    if dialect == "mysql" and _EXECUTABLE_COMMENT.search(sql):
        raise Rejection("executable comments (/*! … */) are not allowed")


def statement_kind(sql: str, dialect: Dialect) -> None:
    """Refuse by the first keyword, before parsing: read_only's view of the raw text."""
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except SqlglotError:
        return
    words = [t.text.upper() for t in tokens if t.text]
    if words and words[0] in _STATE_KEYWORDS:
        raise Rejection(f"only read-only SELECT queries are allowed, not {words[0]} statements", rule="read_only")


TEXT_RULES: tuple[TextRule, ...] = (no_executable_comments, statement_kind)


def read_only(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Only SELECT, WITH … SELECT and set operations; nothing that writes anywhere inside."""
    root = tree.unnest() if isinstance(tree, exp.Subquery) else tree
    if not isinstance(root, _QUERY_ROOTS):
        if not isinstance(root, _WRITES_OR_STATE):
            raise Rejection("the input is not an SQL query")
        raise Rejection(f"only read-only SELECT queries are allowed, not {_kind(root)}")
    for node in tree.walk():
        if isinstance(node, _WRITES_OR_STATE):
            raise Rejection(f"the query contains {_kind(node)}, which is not read-only")
    return tree


def no_locking(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """SELECT … FOR UPDATE/SHARE takes row locks."""
    if tree.find(exp.Lock):
        raise Rejection("row locks (FOR UPDATE / FOR SHARE) are not allowed")
    return tree


def no_hints(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Optimizer hints (``/*+ … */``) are comments the server reads: none reaches the engine.

    Their text is not SQL the guard can check, and a string inside one can close the comment
    early; the query means the same without them."""
    for hint in list(tree.find_all(exp.Hint)):
        hint.pop()
    return tree


def no_session_state(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Server variables (@@datadir), user variables (@x) and variable assignment (@a := 1)."""
    if tree.find(exp.SessionParameter):
        raise Rejection("server variables (@@name) are not allowed")
    for node in tree.find_all(exp.PropertyEQ):
        if isinstance(node.this, (exp.Parameter, exp.Var)):
            raise Rejection("assigning variables is not allowed")
    if tree.find(exp.Parameter, exp.Placeholder):
        raise Rejection("variables and placeholders (@name, $1, ?) are not allowed")
    return tree


def allowed_functions(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Only functions an analytical read needs: an allowlist per dialect, plus the admin's own.

    A function in FROM must be one of the few table functions that only read their
    arguments; a schema-qualified function only one the admin allowed by that name."""
    d, extra = ctx.dialect, ctx.extra_functions
    if tree.find(exp.Operator):
        raise Rejection("operators named by schema (OPERATOR(schema.op)) are not allowed")
    for func in tree.find_all(exp.Func):
        name = functions.display_name(func)
        parent = func.parent
        if isinstance(parent, exp.Dot) and parent.expression is func:
            qualified = f"{parent.this.sql(d)}.{name}".lower()
            if qualified not in extra:
                raise Rejection(f"the function {qualified}() is not allowed")
            continue
        if _in_table_position(func):
            table_name = functions.table_function_name(func)
            if not functions.allowed_table_function(d, table_name, extra):
                raise Rejection(f"the table function {table_name}() is not allowed")
            continue
        if isinstance(func, exp.Anonymous):
            if not functions.allowed_scalar(d, name, extra):
                raise Rejection(f"the function {name.upper()}() is not allowed")
        elif not functions.typed_allowed(func, extra):
            raise Rejection(f"the function {name.upper()}() is not allowed")
    return tree


def _in_table_position(func: exp.Func) -> bool:
    if isinstance(func, (exp.Unnest, exp.JSONTable)) and isinstance(func.parent, (exp.From, exp.Join, exp.Lateral)):
        return True
    parent = func.parent
    return isinstance(parent, (exp.Table, exp.Lateral)) and parent.this is func


def no_denied_functions(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Functions with side effects or access to files, network, processes or time: refused
    even where an admin allowed them; the allowlist after it refuses everything else."""
    for func in tree.find_all(exp.Func):
        name = func.name if isinstance(func, exp.Anonymous) else func.sql_name()
        if name and is_denied(ctx.dialect, name):
            raise Rejection(f"the function {name.upper()}() is not allowed")
    return tree


def allowed_types(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """CASTs only to plain value types: not to ``regclass``/``regproc`` (catalogue lookups),
    ``xml`` (a parser with entities) or types the schema does not define."""
    for node in tree.find_all(exp.DataType):
        if isinstance(node, exp.ObjectIdentifier) or node.this not in functions.ALLOWED_TYPES:
            raise Rejection(f"casting to {node.sql(ctx.dialect)} is not allowed")
    return tree


def bounded_sizes(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Functions that generate text (repeat, lpad, printf widths) get a literal size no larger
    than a preview can show, and never nest: one VM step or one server call that builds
    gigabytes cannot be interrupted by any time limit."""
    cap = functions.MAX_GENERATED_CHARS
    for func in tree.find_all(exp.Func):
        name = functions.display_name(func).upper()
        size = functions.size_argument(func)
        if size is not None and not _int_at_most(size, cap):
            raise Rejection(f"{name}() needs a literal size of at most {cap:,}")
        fmt = functions.format_argument(func)
        if fmt is not None and not _harmless_format(fmt):
            raise Rejection(f"{name}() needs a literal format without '*' or widths above 4 digits")
        if functions.is_amplifier(func) and any(
            functions.is_amplifier(inner) for inner in func.find_all(exp.Func) if inner is not func
        ):
            raise Rejection(f"{name}() cannot be applied to generated text")
    return tree


_FORMAT_WIDTH = re.compile(r"%[-+ #0']*(\*|\d{5,})|%[-+ #0']*\d*\.(\*|\d{5,})")


def _harmless_format(fmt: exp.Expr) -> bool:
    return isinstance(fmt, exp.Literal) and fmt.is_string and not _FORMAT_WIDTH.search(fmt.this)


def dialect_fixups(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Rewrite other dialects' date arithmetic and current-time functions for this engine."""
    return fix_up(tree, ctx.dialect)


def known_tables(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Every table exists in the registered schema.

    A name counts as a CTE only where that CTE is in scope: a CTE named like a catalogue
    table must not hide the real table inside its own body or outside the subquery that
    defines it (``WITH pg_settings AS (SELECT * FROM pg_settings) …``)."""
    checked: set[int] = set()
    for scope in traverse_scope(tree):
        for table in scope.tables:
            checked.add(id(table))
            source = scope.sources.get(table.alias_or_name)
            is_cte = table.args.get("db") is None and source is not None and not isinstance(source, exp.Table)
            if not is_cte:
                _check_table(table, ctx)
    for table in tree.find_all(exp.Table):
        if id(table) not in checked:  # anywhere scope analysis does not reach: no CTE exemption
            _check_table(table, ctx)
    return tree


def _check_table(table: exp.Table, ctx: GuardContext) -> None:
    d = ctx.dialect
    ident = table.this
    if not isinstance(ident, exp.Identifier):
        return  # a table function such as generate_series(...)
    if table.args.get("catalog"):
        raise Rejection(f"cross-database references such as '{table.sql(d)}' are not allowed")
    namespace = table.args.get("db")
    ns_name = namespace.name if isinstance(namespace, exp.Identifier) else None
    if ctx.schema.find_table(ident.name, ns_name, quoted=ident.quoted) is None:
        raise Rejection(f"unknown table '{table.sql(d)}'{_suggest(ident.name, ctx)}")


# The note ``repair_qualifiers`` leaves: ``o.revenue read as x.revenue``.
REQUALIFIED = re.compile(r"^\S+\.\S+ read as \S+\.\S+$")


def repair_qualifiers(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """``o.revenue`` where ``o`` lacks the column but exactly one other joined table has it:
    requalify (small models often pin a column on the wrong alias). Never guesses between two."""
    for scope in traverse_scope(tree):
        tables = {}
        for alias, source in scope.sources.items():
            if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
                db = source.args.get("db")
                tables[alias] = ctx.schema.find_table(
                    source.name, db.name if isinstance(db, exp.Identifier) else None, quoted=source.this.quoted
                )
        for column in scope.columns:
            qualifier, ident = column.table, column.this
            found = tables.get(qualifier)
            if not qualifier or found is None or not isinstance(ident, exp.Identifier):
                continue
            if ctx.schema.find_column(found, ident.name, quoted=ident.quoted):
                continue
            holders = [
                alias
                for alias, table in tables.items()
                if table is not None
                and alias != qualifier
                and ctx.schema.find_column(table, ident.name, quoted=ident.quoted)
            ]
            if len(holders) == 1:
                column.set("table", exp.to_identifier(holders[0]))
                note = f"{qualifier}.{ident.name} read as {holders[0]}.{ident.name}"
                if note not in ctx.notes:
                    ctx.notes.append(note)

    return tree


def known_columns(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Every column exists in the tables it is read from."""
    d = ctx.dialect
    probe = _normalized_copy(tree, d)
    try:
        qualify(
            probe,
            schema=_mapping(ctx.schema),
            dialect=d,
            db=_key(d, ctx.schema.default_namespace) if ctx.schema.default_namespace else None,
            validate_qualify_columns=True,
            quote_identifiers=False,
        )
    except OptimizeError as err:
        try:
            found = _unknown_column(tree, ctx.schema)
        except SqlglotError:  # the scope itself is broken (an alias used twice): the guard says so
            raise err from None
        raise Rejection(found or _column_reason(str(err), ctx.schema)) from None
    except SqlglotError:
        raise Rejection("the query's columns could not be resolved") from None
    return tree


def row_limit(tree: exp.Expr, ctx: GuardContext) -> exp.Expr:
    """Add a LIMIT, or cap an existing one, at the preview row cap."""
    query = tree.unnest() if isinstance(tree, exp.Subquery) else tree
    assert isinstance(query, exp.Query)
    current = query.args.get("limit")
    if isinstance(current, exp.Fetch):  # FETCH FIRST n ROWS ONLY
        options = current.args.get("limit_options")
        if isinstance(options, exp.LimitOptions) and (options.args.get("with_ties") or options.args.get("percent")):
            # WITH TIES returns every row tied with the last one, PERCENT a share of all rows:
            # neither is a cap. ONLY keeps the first rows, which is what a preview shows.
            current.set("limit_options", exp.LimitOptions(rows=True, with_ties=False, percent=False))
            ctx.notes.append("FETCH … WITH TIES / PERCENT read as FETCH FIRST … ROWS ONLY")
        count = current.args.get("count")
        if _int_at_most(count, ctx.max_rows):
            return tree
        current.set("count", exp.Literal.number(ctx.max_rows))
        return tree
    if isinstance(current, exp.Limit) and _int_at_most(current.expression, ctx.max_rows):
        return tree
    if isinstance(query, exp.SetOperation) and current is None:
        return exp.select("*").from_(query.subquery("_preview")).limit(ctx.max_rows)
    return query.limit(ctx.max_rows, copy=False)


def _int_at_most(value: exp.Expr | None, cap: int) -> bool:
    return isinstance(value, exp.Literal) and value.is_int and int(value.this) <= cap


RULES: tuple[Rule, ...] = (
    read_only,
    no_locking,
    no_hints,
    no_session_state,
    dialect_fixups,
    no_denied_functions,
    allowed_functions,
    allowed_types,
    string_literals,
    bounded_sizes,
    known_tables,
    repair_qualifiers,
    known_columns,
    row_limit,
)


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return f"a {str(node.this).upper()} command"
    if isinstance(node, exp.Into):
        return "SELECT … INTO"
    return f"a {node.key.upper()} statement"


def _suggest(name: str, ctx: GuardContext) -> str:
    names = [t.name for t in ctx.schema.tables]
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _key(dialect: Dialect, name: str) -> str:
    return fold_column(dialect, name, quoted=True)


def _mapping(schema: DatabaseSchema) -> MappingSchema:
    d = schema.dialect
    nested: dict[str, dict[str, dict[str, str]]] = {}
    flat: dict[str, dict[str, str]] = {}
    for table in schema.tables:
        cols = {_key(d, c.name): "UNKNOWN" for c in table.columns}
        if table.namespace:
            nested.setdefault(_key(d, table.namespace), {})[_key(d, table.name)] = cols
        else:
            flat[_key(d, table.name)] = cols
    mapping: dict[str, object] = dict(nested) if nested else dict(flat)
    return MappingSchema(mapping, dialect=d, normalize=False)


def _normalized_copy(tree: exp.Expr, dialect: Dialect) -> exp.Expr:
    """Identifiers folded the way the engine folds them, then quoted, so qualify compares exactly."""
    probe = tree.copy()
    for ident in probe.find_all(exp.Identifier):
        ident.set("this", fold_column(dialect, ident.name, quoted=ident.quoted))
        ident.set("quoted", True)
    return probe


_COLUMN_NAME = re.compile(r"[Cc]olumn(?: '|: )([^'\s.]+(?:\.[^'\s.]+)?)")


def _column_reason(message: str, schema: DatabaseSchema) -> str:
    """qualify's own words, when the scope walk below found no culprit: name the column."""
    match = _COLUMN_NAME.search(message)
    if match is None:
        return "a column could not be matched to a table in the schema"
    name = match.group(1)
    return _unknown_bare(name, name.rsplit(".", 1)[-1].strip('"`'), schema)


def _unknown_bare(written: str, name: str, schema: DatabaseSchema) -> str:
    """Name the column and, when some table has it, say which: the retry prompt shows this."""
    holders = [t.name for t in schema.tables if schema.find_column(t, name, quoted=True) or schema.find_column(t, name)]
    if holders:
        return f"unknown column '{written}' here; a column named {name} exists in {', '.join(holders[:3])}"
    return f"unknown column '{written}'"


def _unknown_column(tree: exp.Expr, schema: DatabaseSchema) -> str | None:
    """The first column that no source in its scope has, said so that a model can fix it:
    for ``T1.fname``, which table T1 is and which tables do have ``fname``."""
    for _scope, column, source in unknown_columns(tree, schema):
        ident = column.this
        assert isinstance(ident, exp.Identifier)
        if source is None:
            return _unknown_bare(ident.name, ident.name, schema)
        written = f"{column.table}.{ident.name}"
        table = schema_table(source, schema) if isinstance(source, exp.Table) else None
        if table is not None:
            return _wrong_table(written, ident, table, schema)
        return f"unknown column '{written}': {column.table} has no column {ident.name}"
    return None


def _wrong_table(written: str, ident: exp.Identifier, table: Table, schema: DatabaseSchema) -> str:
    holders = [
        t.name for t in schema.tables if t is not table and schema.find_column(t, ident.name, quoted=ident.quoted)
    ]
    if not holders:
        return f"unknown column '{written}': {table.name} has no column {ident.name}"
    return f"unknown column '{written}': {ident.name} is a column of {_listed(holders[:3])}, not of {table.name}"


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
