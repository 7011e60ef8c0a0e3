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
    rules: Sequence[Rule] = RULES,
) -> GuardResult:
    """Run ``sql`` through every rule for ``schema``'s dialect."""
    ctx = GuardContext(schema=schema, max_rows=max_rows)
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
    notes = [*warnings, *ctx.notes]
    return GuardResult(sql=sql, ok=True, normalized=to_sql(tree, schema.dialect), warnings=tuple(notes))


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
    warnings = [] if used == dialect else [f"rewritten from {used} syntax for {dialect}"]
    return statements[0], warnings


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
