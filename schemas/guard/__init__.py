"""The SQL guard: one statement in, normalized read-only SQL out, or a named rejection.

>>> from schemas.model import Column, DatabaseSchema, Table
>>> emp = Table(name="emp", columns=(Column(name="id", type="INT"),))
>>> s = DatabaseSchema(dialect="sqlite", tables=(emp,))
>>> check("select id from emp", s).normalized
'SELECT id FROM emp LIMIT 50'
>>> check("delete from emp", s).rule
'read_only'
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import SqlglotError

from chat2sql.errors import GuardRejected
from schemas.dialects import Dialect
from schemas.guard.generate import to_sql
from schemas.guard.literals import mark_double_quoted
from schemas.guard.rules import RULES, TEXT_RULES, GuardContext, Rejection, Rule
from schemas.model import DatabaseSchema

DEFAULT_MAX_ROWS = 50

# sqlglot warns for every statement it can only parse as an opaque Command; the guard
# refuses those by design, so the warning is noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)
_FALLBACK_DIALECTS: tuple[Dialect, ...] = ("mysql", "postgres", "sqlite")


@dataclass(frozen=True, kw_only=True)
class GuardResult:
    sql: str
    ok: bool
    normalized: str | None = None
    rule: str | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def raise_for_rejection(self) -> str:
        """The normalized SQL, or ``GuardRejected`` naming the rule."""
        if not self.ok or self.normalized is None:
            raise GuardRejected(self.rule or "guard", self.reason or "rejected")
        return self.normalized

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"sql": self.sql, "ok": self.ok}
        if self.ok:
            out["normalized"] = self.normalized
            if self.warnings:
                out["warnings"] = list(self.warnings)
        else:
            out["rule"], out["reason"] = self.rule, self.reason
        return out


def check(
    sql: str,
    schema: DatabaseSchema,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    allowed_functions: Sequence[str] = (),
    rules: Sequence[Rule] = RULES,
) -> GuardResult:
    """Run ``sql`` through every rule for ``schema``'s dialect.

    ``allowed_functions`` are the database admin's additions to the function allowlist.
    The SQL that comes out is parsed once more and must be the same single statement the
    rules checked, with no comment or hint left in it."""
    if len(sql) > MAX_SQL_CHARS:
        return GuardResult(
            sql=sql[:200],
            ok=False,
            rule="single_statement",
            reason=f"the SQL is longer than {MAX_SQL_CHARS:,} characters",
        )
    try:
        return _checked(
            sql, schema, max_rows=max_rows, extra=tuple(sorted({f.lower() for f in allowed_functions})), rules=rules
        )
    except RecursionError:  # sqlglot parses, walks and writes recursively
        return GuardResult(sql=sql, ok=False, rule="single_statement", reason="the SQL is nested too deeply")


MAX_SQL_CHARS = 100_000


def _checked(
    sql: str, schema: DatabaseSchema, *, max_rows: int, extra: tuple[str, ...], rules: Sequence[Rule]
) -> GuardResult:
    result = _run_rules(sql, schema, max_rows=max_rows, extra=extra, rules=rules)
    # The emitted text is what the engine reads: it must itself pass every rule and come out
    # unchanged (a fixed point), with no comment or hint in it, or what ran would not be what
    # was checked. sqlglot sometimes needs a second pass to settle (INTERVAL 1 -> '1').
    for _ in range(_SETTLE_PASSES):
        if not result.ok or result.normalized is None:
            return result
        again = _run_rules(result.normalized, schema, max_rows=max_rows, extra=extra, rules=rules)
        if not again.ok:
            return _round_trip(sql, f"the rewritten query fails: {again.reason}")
        settled = again.normalized == result.normalized
        result = GuardResult(
            sql=sql, ok=True, normalized=again.normalized, warnings=_merged(result.warnings, again.warnings)
        )
        if settled:
            if _has_comment(again.normalized or "", schema.dialect):
                return _round_trip(sql, "the rewritten query still holds a comment or hint")
            return result
    return _round_trip(sql, "the rewritten query does not read back as the checked one")


_SETTLE_PASSES = 3


def _round_trip(sql: str, reason: str) -> GuardResult:
    return GuardResult(sql=sql, ok=False, rule="round_trip", reason=reason)


def _merged(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))


def _run_rules(
    sql: str, schema: DatabaseSchema, *, max_rows: int, extra: tuple[str, ...], rules: Sequence[Rule]
) -> GuardResult:
    ctx = GuardContext(schema=schema, max_rows=max_rows, extra_functions=extra)
    for text_rule in TEXT_RULES:
        try:
            text_rule(sql, schema.dialect)
        except Rejection as rej:
            return GuardResult(sql=sql, ok=False, rule=rej.rule or text_rule.__name__, reason=rej.reason)
    try:
        tree, warnings = _single_statement(sql, schema.dialect)
    except Rejection as rej:
        return GuardResult(sql=sql, ok=False, rule=rej.rule or "single_statement", reason=rej.reason)
    for rule in rules:
        try:
            tree = rule(tree, ctx)
        except Rejection as rej:
            return GuardResult(sql=sql, ok=False, rule=rule.__name__, reason=rej.reason)
        except SqlglotError as err:  # a query sqlglot parses but cannot analyse (an alias used twice)
            reason = f"the query could not be analysed: {str(err).splitlines()[0][:200]}"
            return GuardResult(sql=sql, ok=False, rule=rule.__name__, reason=reason)
    notes = [*warnings, *ctx.notes]
    return GuardResult(sql=sql, ok=True, normalized=to_sql(tree, schema.dialect), warnings=tuple(notes))


def _has_comment(sql: str, dialect: Dialect) -> bool:
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except SqlglotError:
        return True
    return any(t.comments or t.token_type == TokenType.HINT for t in tokens)


def _single_statement(sql: str, dialect: Dialect) -> tuple[exp.Expr, list[str]]:
    """Parse exactly one statement, in the engine's dialect or, failing that, another one."""
    if not sql.strip() or not _has_code(sql, dialect):
        raise Rejection("there is no SQL statement")
    statements, used, first_error = None, dialect, None
    for candidate in (dialect, *(d for d in _FALLBACK_DIALECTS if d != dialect)):
        try:
            statements = [s for s in sqlglot.parse(sql, read=candidate) if s is not None]
            used = candidate
            break
        except SqlglotError as err:
            first_error = first_error or err
    if statements is None:
        if _is_stacked(sql, dialect):
            raise Rejection("exactly one statement is allowed")
        if _has_into(sql, dialect):
            raise Rejection("SELECT … INTO writes to files or variables", rule="read_only")
        raise Rejection(_parse_reason(first_error, dialect))
    statements = [s for s in statements if not isinstance(s, exp.Semicolon)]
    if not statements:
        raise Rejection("there is no SQL statement")
    if len(statements) != 1:
        raise Rejection(f"exactly one statement is allowed, found {len(statements)}")
    _check_size(statements[0])
    mark_double_quoted(statements[0], sql)
    warnings = [] if used == dialect else [f"rewritten from {used} syntax for {dialect}"]
    return statements[0], warnings


MAX_NODES = 5_000  # Spider's and our corpora's largest query has under 100
MAX_DEPTH = 100  # ... and is 11 deep; sqlglot's scope analysis is quadratic in depth


def _check_size(tree: exp.Expr) -> None:
    """Refuse trees whose checking alone would take seconds (a 1,000-term sum takes 5 s)."""
    count, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise Rejection(f"the SQL is nested more than {MAX_DEPTH} levels deep")
        if count > MAX_NODES:
            raise Rejection(f"the SQL has more than {MAX_NODES:,} parts")
        stack.extend((child, depth + 1) for child in node.iter_expressions())


def _is_stacked(sql: str, dialect: Dialect) -> bool:
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except SqlglotError:
        return False
    ends = [i for i, t in enumerate(tokens) if t.token_type == TokenType.SEMICOLON]
    return (
        bool(ends)
        and ends[0] < len(tokens) - 1
        and any(t.token_type != TokenType.SEMICOLON for t in tokens[ends[0] + 1 :])
    )


def _has_into(sql: str, dialect: Dialect) -> bool:
    try:
        return any(t.text.upper() == "INTO" for t in sqlglot.tokenize(sql, read=dialect))
    except SqlglotError:
        return False


def _has_code(sql: str, dialect: Dialect) -> bool:
    try:
        return bool(sqlglot.tokenize(sql, read=dialect))
    except SqlglotError:
        return True


def _parse_reason(err: SqlglotError | None, dialect: Dialect) -> str:
    details = getattr(err, "errors", None) or []
    if details and isinstance(details[0], dict) and details[0].get("line"):
        where = f"line {details[0]['line']}, column {details[0]['col']}"
        return f"the SQL could not be parsed for {dialect} ({where})"
    return f"the SQL could not be parsed for {dialect}"


__all__ = ["DEFAULT_MAX_ROWS", "RULES", "GuardContext", "GuardResult", "check"]
