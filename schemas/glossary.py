"""A business glossary per registered database: the semantic layer admins keep beside the schema.

Four kinds of entry, each versioned in ``glossary_entries`` (migration 0009):

* ``term`` — a phrase in plain words: ``active customer: customers with an order in the last 90 days``;
* ``metric`` — a SQL expression over the database's columns: ``revenue = SUM(order_items.revenue)``;
* ``column`` — a description of one column, shown to the model as the column's comment;
* ``hidden`` — a column the model never sees (not rendered, so no sample values either).

Redefining an entry inserts version N+1 and deactivates version N; removing one deactivates it.
History stays until the database leaves the registry (``drop_database``).

Term or metric? When the admin does not say, a definition is a **metric** when it parses as one
SQL expression in the database's dialect (not a query, not ``a AS b``) and either names a column
that exists, or looks like SQL anyway: a function call, a ``table.column`` or a literal. Then
every column it names must exist (``UnknownGlossaryColumn`` otherwise). Everything else — prose,
or bare words joined by ``-`` such as ``non-churned`` — is a **term**.

>>> GlossaryEntry(database="sales", kind="metric", name="revenue", definition="SUM(sales.amount)",
...               version=2, created_by="cli:ann", created_at=dt.datetime(2026, 1, 1)).hint
'revenue = SUM(sales.amount)'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import sqlglot
from sqlalchemy import Boolean, CheckConstraint, DateTime, Engine, Index, String, Text, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlglot import exp
from sqlglot.errors import SqlglotError

from chat2sql import messages
from chat2sql.db import Base
from chat2sql.errors import UserFacingError
from chat2sql.tokens import reject_control_tokens
from schemas.model import Column, DatabaseSchema, Table
from schemas.render import approx_tokens

KINDS = ("term", "metric", "column", "hidden")
MAX_NAME_CHARS = 80  # a term's name, or TABLE.COLUMN
MAX_DEFINITION_CHARS = 500  # one line of the model's prompt
MAX_BY_CHARS = 512
DEFAULT_BUDGET_TOKENS = 300
_NAMESPACES = {"term": ("term", "metric"), "metric": ("term", "metric"), "column": ("column",), "hidden": ("hidden",)}
_RETRIES = 3  # a concurrent definition of the same name takes the version first: read again
_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    ("a", "an", "and", "the", "of", "per", "by", "for", "in", "on", "to", "with", "what", "which", "how", "is", "are")
)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


class GlossaryRow(Base):
    __tablename__ = "glossary_entries"
    __table_args__ = (
        CheckConstraint("kind IN ('term', 'metric', 'column', 'hidden')", name="ck_glossary_entries_kind"),
        UniqueConstraint("database", "kind", "name", "version", name="uq_glossary_entries_version"),
        Index("ix_glossary_entries_database", "database"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    database: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    definition: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str] = mapped_column(String(MAX_BY_CHARS))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, kw_only=True)
class GlossaryEntry:
    database: str
    kind: str
    name: str  # a term's or metric's name in lower case; TABLE.COLUMN as the schema spells it
    definition: str  # "" for a hidden column
    version: int
    created_by: str
    created_at: dt.datetime
    active: bool = True

    @property
    def hint(self) -> str:
        """One line for the model's prompt."""
        if self.kind == "metric":
            return f"{self.name} = {self.definition}"
        if self.kind == "hidden":
            return f"{self.name}: hidden"
        return f"{self.name}: {self.definition}"

    def to_json(self) -> dict[str, object]:
        return {
            "database": self.database,
            "kind": self.kind,
            "name": self.name,
            "definition": self.definition,
            "version": self.version,
            "active": self.active,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


# --- errors: facts here, the sentences in chat2sql.messages ---------------------------------------


class GlossaryError(UserFacingError):
    """A glossary change was refused; nothing was stored."""


class InvalidGlossaryText(GlossaryError):
    """``what`` ("name", "definition", "column", "kind") ``problem`` ("is empty", …)."""

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(what, problem)
        self.what = what
        self.problem = problem

    @property
    def message(self) -> str:
        return messages.glossary_invalid(self.what, self.problem)


class UnknownGlossaryColumn(GlossaryError):
    """``table`` None: a bare column that no table has; ``table_exists`` False: no such table."""

    def __init__(self, database: str, column: str, table: str | None, *, table_exists: bool = True) -> None:
        super().__init__(database, column, table, table_exists)
        self.database = database
        self.column = column
        self.table = table
        self.table_exists = table_exists

    @property
    def message(self) -> str:
        return messages.glossary_unknown_column(self.database, self.column, self.table, table_exists=self.table_exists)


class InvalidMetric(GlossaryError):
    def __init__(self, database: str, problem: str) -> None:
        super().__init__(database, problem)
        self.database = database
        self.problem = problem

    @property
    def message(self) -> str:
        return messages.glossary_invalid_metric(self.database, self.problem)


class HiddenColumnInUse(GlossaryError):
    """A metric would show the model a hidden column: defining it, or hiding a column it uses."""

    def __init__(self, database: str, column: str, metric: str | None) -> None:
        super().__init__(database, column, metric)
        self.database = database
        self.column = column
        self.metric = metric

    @property
    def message(self) -> str:
        return messages.glossary_hidden_in_use(self.database, self.column, self.metric)


class GlossaryUnchanged(GlossaryError):
    """The same definition is already the active one: nothing to store."""

    def __init__(self, entry: GlossaryEntry) -> None:
        super().__init__(entry.database, entry.kind, entry.name, entry.version)
        self.entry = entry

    @property
    def message(self) -> str:
        e = self.entry
        return messages.glossary_unchanged(e.database, e.kind, e.name, e.version)


class NotInGlossary(GlossaryError):
    def __init__(self, database: str, name: str, kind: str | None) -> None:
        super().__init__(database, name, kind)
        self.database = database
        self.name = name
        self.kind = kind

    @property
    def message(self) -> str:
        return messages.glossary_not_found(self.database, self.name, hidden=self.kind == "hidden")


# --- the store ----------------------------------------------------------------------------------


class Glossary:
    """Glossary entries in the registry's own SQL store; ``schema_of`` returns a registered
    database's schema or raises ``UnknownDatabase``."""

    def __init__(self, *, engine: Engine, schema_of: Callable[[str], DatabaseSchema]) -> None:
        self._engine = engine
        self._schema_of = schema_of

    def define(self, database: str, kind: str | None, name: str, definition: str, *, by: str) -> GlossaryEntry:
        """Store a new version of an entry (``kind`` None: term or metric, see the module doc).
        Raises a ``GlossaryError`` (``GlossaryUnchanged`` for the active definition again)."""
        schema = self._schema_of(database)
        if kind is not None and kind not in KINDS:
            raise InvalidGlossaryText("kind", f"must be one of {', '.join(KINDS)}")
        definition = "" if kind == "hidden" else _clean("definition", definition, MAX_DEFINITION_CHARS)
        if kind == "column" or kind == "hidden":
            table, column = _resolve(schema, database, _clean("column", name, MAX_NAME_CHARS))
            key = _column_key(schema, table, column)
        else:
            key = _clean("name", _unquote(name), MAX_NAME_CHARS).lower()
            kind = kind or _infer(schema, definition)
        hidden = {e.name.lower(): e for e in self.entries(database) if e.kind == "hidden"}
        if kind == "metric":
            for used in _metric_columns(schema, database, definition):
                if used.lower() in hidden:
                    raise HiddenColumnInUse(database, used, None)
        if kind == "hidden":
            for metric in self.entries(database):
                if metric.kind == "metric" and key.lower() in _used_lower(schema, metric.definition):
                    raise HiddenColumnInUse(database, key, metric.name)
        for attempt in range(_RETRIES):
            try:
                return self._store(database, kind, key, definition, by=by[:MAX_BY_CHARS])
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def remove(self, database: str, kind: str | None, name: str, *, by: str) -> None:
        """Deactivate the active entry (``kind`` None: the term, metric or column description
        of that name; hidden columns are only removed by kind). History stays."""
        schema = self._schema_of(database)
        is_column = kind in ("column", "hidden")
        wanted = _clean("column" if is_column else "name", name if is_column else _unquote(name), MAX_NAME_CHARS)
        keys = {wanted.lower()}
        if "." in wanted:
            with contextlib.suppress(GlossaryError):  # a column gone since can still be removed by name
                keys.add(_column_key(schema, *_resolve(schema, database, wanted)).lower())
        kinds = (kind,) if kind is not None else ("term", "metric", "column")
        with Session(self._engine) as session:
            rows = session.scalars(
                select(GlossaryRow).where(
                    GlossaryRow.database == database, GlossaryRow.active.is_(True), GlossaryRow.kind.in_(kinds)
                )
            ).all()
            found = [r for r in rows if r.name.lower() in keys]
            if not found:
                raise NotInGlossary(database, wanted, kind)
            for row in found:
                row.active = False
            session.commit()

    def entries(self, database: str) -> tuple[GlossaryEntry, ...]:
        """The active entries, by kind then name."""
        return self._select(database, active_only=True)

    def history(self, database: str) -> tuple[GlossaryEntry, ...]:
        """Every version ever stored, active or not, by kind, name and version."""
        return self._select(database, active_only=False)

    def drop_database(self, database: str) -> None:
        """Forget every entry and its history: a database registered again under this name starts afresh."""
        with Session(self._engine) as session:
            session.execute(delete(GlossaryRow).where(GlossaryRow.database == database))
            session.commit()

    def _store(self, database: str, kind: str, name: str, definition: str, *, by: str) -> GlossaryEntry:
        with Session(self._engine) as session:
            rows = session.scalars(
                select(GlossaryRow).where(GlossaryRow.database == database, GlossaryRow.kind.in_(_NAMESPACES[kind]))
            ).all()
            same_name = [r for r in rows if r.name.lower() == name.lower()]
            active = [r for r in same_name if r.active]
            for row in active:
                if row.kind == kind and row.definition == definition:
                    raise GlossaryUnchanged(_entry(row))
            for row in active:
                row.active = False
            row = GlossaryRow(
                database=database,
                kind=kind,
                name=name,
                definition=definition,
                version=max((r.version for r in same_name), default=0) + 1,
                active=True,
                created_by=by,
                created_at=dt.datetime.now(dt.UTC),
            )
            session.add(row)
            session.commit()
            return _entry(row)

    def _select(self, database: str, *, active_only: bool) -> tuple[GlossaryEntry, ...]:
        query = select(GlossaryRow).where(GlossaryRow.database == database)
        if active_only:
            query = query.where(GlossaryRow.active.is_(True))
        with Session(self._engine) as session:
            rows = session.scalars(query.order_by(GlossaryRow.kind, GlossaryRow.name, GlossaryRow.version)).all()
            return tuple(_entry(r) for r in rows)


def _entry(row: GlossaryRow) -> GlossaryEntry:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.UTC)  # SQLite
    return GlossaryEntry(
        database=row.database,
        kind=row.kind,
        name=row.name,
        definition=row.definition,
        version=row.version,
        created_by=row.created_by,
        created_at=created,
        active=row.active,
    )


# --- validation ----------------------------------------------------------------------------------


def _clean(what: str, text: str, limit: int) -> str:
    """One line of text, or ``InvalidGlossaryText``: it goes into every matching prompt."""
    flat = " ".join((text or "").split())
    if not flat:
        raise InvalidGlossaryText(what, "is empty")
    if len(flat) > limit:
        raise InvalidGlossaryText(what, f"is longer than {limit} characters")
    if _CONTROL.search(flat):
        raise InvalidGlossaryText(what, "contains control characters")
    try:
        reject_control_tokens(flat)
    except ValueError as err:
        raise InvalidGlossaryText(what, str(err)) from None
    return flat


def _unquote(name: str) -> str:
    """A term's name without the quotes around it (straight or curly, as chat apps send them)."""
    name = (name or "").strip()
    for quote in ('"', "'", "“”", "‘’"):
        if len(name) >= 2 and name[0] == quote[0] and name[-1] == quote[-1]:
            return name[1:-1]
    return name


def _parse_expression(definition: str, dialect: str) -> exp.Expr | None:
    """The definition as one SQL expression, or None (prose, a query, several statements, ``a AS b``)."""
    try:
        parsed = [p for p in sqlglot.parse(definition, read=dialect) if p is not None]
    except SqlglotError:
        return None
    if len(parsed) != 1:
        return None
    node = parsed[0]
    if isinstance(node, exp.Query | exp.Alias | exp.Command | exp.DDL | exp.DML) or not isinstance(node, exp.Condition):
        return None
    return node


def _columns(node: exp.Expr) -> list[exp.Column]:
    return [c for c in node.find_all(exp.Column) if not isinstance(c.this, exp.Star)]


def _infer(schema: DatabaseSchema, definition: str) -> str:
    node = _parse_expression(definition, schema.dialect)
    if node is None:
        return "term"
    columns = _columns(node)
    if not columns:
        return "term"
    if any(_find(schema, c) is not None for c in columns):
        return "metric"
    looks_like_sql = any(c.table for c in columns) or node.find(exp.Func, exp.Literal) is not None
    return "metric" if looks_like_sql else "term"


def _metric_columns(schema: DatabaseSchema, database: str, definition: str) -> list[str]:
    """The columns a metric names (as TABLE.COLUMN, or the bare name); raises on the first unknown one."""
    node = _parse_expression(definition, schema.dialect)
    if node is None:
        raise InvalidMetric(database, "it is not one SQL expression (a query or prose is not a metric)")
    columns = _columns(node)
    if not columns:
        raise InvalidMetric(database, "it names no column of the database")
    used = []
    for column in columns:
        found = _find(schema, column)
        if found is None:
            table = _table_ref(column)
            exists = not table or _find_table(schema, column) is not None
            raise UnknownGlossaryColumn(database, column.name, table or None, table_exists=exists)
        used += [_column_key(schema, t, c) for t, c in found]
    return used


def _used_lower(schema: DatabaseSchema, definition: str) -> set[str]:
    node = _parse_expression(definition, schema.dialect)
    found = [_find(schema, c) or [] for c in _columns(node)] if node is not None else []
    return {_column_key(schema, t, c).lower() for pairs in found for t, c in pairs}


def _table_ref(column: exp.Column) -> str:
    return ".".join(p for p in (column.catalog, column.db, column.table) if p)


def _find_table(schema: DatabaseSchema, column: exp.Column) -> Table | None:
    identifier = column.args.get("table")
    quoted = bool(isinstance(identifier, exp.Identifier) and identifier.quoted)
    return schema.find_table(column.table, column.db or None, quoted=quoted)


def _find(schema: DatabaseSchema, column: exp.Column) -> list[tuple[Table, Column]] | None:
    """Where a metric's column lives: its table's, or for a bare name every table that has it."""
    quoted = bool(isinstance(column.this, exp.Identifier) and column.this.quoted)
    if column.table:
        table = _find_table(schema, column)
        found = schema.find_column(table, column.name, quoted=quoted) if table is not None else None
        return [(table, found)] if table is not None and found is not None else None
    pairs = [(t, c) for t in schema.tables if (c := schema.find_column(t, column.name, quoted=quoted)) is not None]
    return pairs or None


def _resolve(schema: DatabaseSchema, database: str, ref: str) -> tuple[Table, Column]:
    """``TABLE.COLUMN`` (or ``SCHEMA.TABLE.COLUMN``, quoted parts allowed) as it is in the schema."""
    try:
        node = sqlglot.parse_one(ref, read=schema.dialect)
    except SqlglotError:
        node = None
    if not isinstance(node, exp.Column) or not node.table or isinstance(node.this, exp.Star):
        raise InvalidGlossaryText("column", "must be written TABLE.COLUMN")
    found = _find(schema, node)
    if found is None:
        exists = _find_table(schema, node) is not None
        raise UnknownGlossaryColumn(database, node.name, _table_ref(node), table_exists=exists)
    return found[0]


def _column_key(schema: DatabaseSchema, table: Table, column: Column) -> str:
    return f"{_table_key(schema, table)}.{column.name}"


def _table_key(schema: DatabaseSchema, table: Table) -> str:
    default = table.namespace is None or table.namespace == schema.default_namespace
    return table.name if default else table.qualified_name


# --- what the model sees -------------------------------------------------------------------------


def hidden_columns(entries: Iterable[GlossaryEntry]) -> frozenset[tuple[str, str]]:
    """(table, column), lower-cased, of the active hidden entries; ``table`` keeps a
    non-default namespace (``sales.customers``)."""
    pairs = (e.name.lower().rpartition(".") for e in entries if e.kind == "hidden" and e.active)
    return frozenset((table, column) for table, _, column in pairs)


def apply(schema: DatabaseSchema, entries: Sequence[GlossaryEntry]) -> DatabaseSchema:
    """The schema as the model sees it: hidden columns gone (with their samples, the primary
    key they belong to and every foreign key naming them; a table left without columns goes
    too), described columns carrying the admin's words as their comment."""
    hidden = hidden_columns(entries)
    notes = {tuple(e.name.lower().rsplit(".", 1)): e.definition for e in entries if e.kind == "column" and e.active}
    if not hidden and not notes:
        return schema
    kept: dict[str, Table] = {}
    for table in schema.tables:
        key = _table_key(schema, table).lower()
        gone = {c.name.lower() for c in table.columns if (key, c.name.lower()) in hidden}
        columns = tuple(
            c.model_copy(update={"comment": notes[(key, c.name.lower())]}) if (key, c.name.lower()) in notes else c
            for c in table.columns
            if c.name.lower() not in gone
        )
        if not columns:
            continue
        kept[key] = table.model_copy(
            update={
                "columns": columns,
                "primary_key": () if gone & {k.lower() for k in table.primary_key} else table.primary_key,
            }
        )
    tables = []
    for key, table in kept.items():
        foreign_keys = tuple(
            fk
            for fk in table.foreign_keys
            if not any((key, c.lower()) in hidden for c in fk.columns)
            and _target_kept(schema, kept, fk.ref_table, fk.ref_namespace, fk.ref_columns, hidden)
        )
        tables.append(table.model_copy(update={"foreign_keys": foreign_keys}))
    return schema.model_copy(update={"tables": tuple(tables)})


def _target_kept(
    schema: DatabaseSchema,
    kept: dict[str, Table],
    ref_table: str,
    ref_namespace: str | None,
    ref_columns: tuple[str, ...],
    hidden: frozenset[tuple[str, str]],
) -> bool:
    default = ref_namespace is None or ref_namespace == schema.default_namespace
    key = (ref_table if default else f"{ref_namespace}.{ref_table}").lower()
    return key in kept and not any((key, c.lower()) in hidden for c in ref_columns)


def relevant(
    entries: Sequence[GlossaryEntry], question: str, *, budget_tokens: int = DEFAULT_BUDGET_TOKENS
) -> list[GlossaryEntry]:
    """The terms and metrics a question concerns (every word of their name, singular or plural,
    in the question; all but one of a name of three words or more) and the descriptions of
    columns it names, best first, whose hints fit in ``budget_tokens`` (``approx_tokens`` of
    each hint and its newline).

    >>> e = GlossaryEntry(database="s", kind="term", name="active customer", definition="ordered lately",
    ...                   version=1, created_by="t", created_at=dt.datetime(2026, 1, 1))
    >>> [x.name for x in relevant([e], "Active customers by country?")]
    ['active customer']
    """
    words = _words(question)
    scored: list[tuple[float, int, str, GlossaryEntry]] = []
    for entry in entries:
        if not entry.active or entry.kind == "hidden":
            continue
        score = _score(entry, words)
        if score > 0:
            scored.append((-score, 0 if entry.kind in ("term", "metric") else 1, entry.name, entry))
    chosen: list[GlossaryEntry] = []
    left = budget_tokens
    for *_, entry in sorted(scored, key=lambda s: s[:3]):
        cost = approx_tokens(entry.hint + "\n")
        if cost <= left:
            chosen.append(entry)
            left -= cost
    return chosen


def _score(entry: GlossaryEntry, words: set[str]) -> float:
    if entry.kind == "column":
        table, _, column = entry.name.lower().rpartition(".")
        wanted = _words(column.replace("_", " "))
        if not wanted or not wanted <= words:
            return 0.0
        return 0.5 + (0.25 if _words(table.rpartition(".")[2].replace("_", " ")) <= words else 0.0)
    wanted = _words(entry.name) or set(_raw_words(entry.name))
    missing = len(wanted - words)
    if not wanted or missing > (1 if len(wanted) >= 3 else 0):  # every word; of three or more, all but one
        return 0.0
    return 1.0 - missing / len(wanted)


def _raw_words(text: str) -> list[str]:
    return [_singular(w) for w in _WORD.findall(text.lower())]


def _words(text: str) -> set[str]:
    return {w for w in _raw_words(text) if w not in _STOPWORDS}


def _singular(word: str) -> str:
    """A plain English singular, good enough to match ``customers`` with ``customer``.

    >>> [_singular(w) for w in ("categories", "boxes", "sales", "cases", "classes", "status", "revenue")]
    ['category', 'box', 'sale', 'case', 'class', 'status', 'revenue']
    """
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word
