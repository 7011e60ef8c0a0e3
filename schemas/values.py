"""Schema linking with values: which columns hold the words of a question.

A question says "flights from Aberdeen"; the schema says ``airports.City``. Nothing in the
names joins the two, the data does. ``build_index`` reads the distinct values of every
low-cardinality text column once (at registration and refresh), on a read-only connection,
bounded in time and size; ``links`` then finds, in microseconds, the quoted literals and
word n-grams of a question that equal a stored value, so the prompt can say
``'Aberdeen' is a value of airports.City`` with the value spelled as the database stores it.

The index lives in its own table (``value_indexes``), out of the registry's hot path:
``Registry.get``/``list`` never read it; ``Registry.values`` loads it on demand and keeps it
in memory per (database, schema hash, build time).

>>> idx = ValueIndex(columns=(IndexedColumn(table="airports", column="City", values=("Aberdeen", "Abilene")),))
>>> [link.hint for link in links(idx, "How many flights depart from ABERDEEN?")]
["'Aberdeen' is a value of airports.City"]
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from sqlalchemy import Connection, DateTime, Engine, String, Text, column, delete, select, table
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, Session, mapped_column

from chat2sql.db import Base
from schemas.connect import readonly_engine
from schemas.model import Column, DatabaseSchema, Table
from schemas.render import sql_literal
from schemas.tables import DatabaseRow

if TYPE_CHECKING:
    from schemas.registry import RegisteredDatabase

log = logging.getLogger(__name__)

# --- bounds -------------------------------------------------------------------------------
MAX_DISTINCT = 300  # a column with more distinct values is not low-cardinality: not indexed
MAX_VALUE_CHARS = 60  # a longer value (free text) is left out
MAX_VALUES = 30_000  # per database; columns past it are left out (the index says truncated)
MAX_SCAN_ROWS = 200_000  # rows read per column: a value seen only further down is missed
QUERY_TIMEOUT_S = 2.0  # per column query; one that runs longer is skipped
BUILD_BUDGET_S = 10.0  # per database; columns not reached by then are left out
MAX_WORDS = 4  # the longest question n-gram compared with values
MAX_LINKS = 20  # per question
MAX_COLUMNS_PER_PHRASE = 5  # one phrase found in many columns links the first few
FORMAT = 1  # of the stored JSON

_TEXT_TYPES = ("CHAR", "TEXT", "STRING", "ENUM", "CITEXT", "CLOB", "NAME")
_NOT_TEXT = ("BINARY", "BLOB", "BYTEA")  # VARBINARY, LONGBLOB …
_PADDED = re.compile(r"(?:N?CHAR|CHARACTER|BPCHAR)(?:\s*\(\d+\))?")  # blank-padded: trailing spaces dropped
_WORD = re.compile(r"[^\W_]+")
_NUMBER = re.compile(r"\d+")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]|<\\|")
_QUOTED = re.compile(
    r"(?<![\w'])'(?P<a>[^'\n]{1,80})'(?![\w'])"
    r'|"(?P<b>[^"\n]{1,80})"'
    r"|“(?P<c>[^”\n]{1,80})”"
    r"|‘(?P<d>[^’\n]{1,80})’"
    r"|«\s?(?P<e>[^»\n]{1,80}?)\s?»"
)
# Words a question is made of rather than about: never linked on their own (or all together).
STOPWORDS = frozenset(
    {
        "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as",
        "at", "be", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
        "does", "doing", "down", "during", "each", "either", "every", "few", "for", "from", "further", "get", "give",
        "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into",
        "is", "it", "its", "itself", "just", "least", "less", "list", "many", "me", "more", "most", "much", "my",
        "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other", "our", "out", "over", "own", "per",
        "same", "she", "should", "show", "so", "some", "such", "than", "that", "the", "their", "them", "then",
        "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was",
        "we", "were", "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "will", "with",
        "would", "you", "your", "yes", "find", "tell", "return", "display", "count", "number", "total", "average",
        "sum", "name", "names", "value", "values", "different", "distinct", "order", "ordered", "sorted", "ascending",
        "descending"
    }
)  # fmt: skip


def is_text_type(type_name: str) -> bool:
    """Whether a column type (as introspection writes it) holds text worth indexing.

    >>> [is_text_type(t) for t in ("VARCHAR(20)", "text", "CHARACTER VARYING", "INTEGER", "VARBINARY(8)")]
    [True, True, True, False, False]
    """
    upper = type_name.upper()
    return any(w in upper for w in _TEXT_TYPES) and not any(w in upper for w in _NOT_TEXT)


def normalize(text: str) -> str:
    """The form values and question phrases are compared in: case, accents, punctuation and
    spacing folded away.

    >>> normalize("  Saint-Étienne's  AIRPORT ")
    'saint etienne s airport'
    """
    return " ".join(_words(text))


def _words(text: str) -> list[str]:
    if text.isascii():  # the common case, ten times faster
        return _WORD.findall(text.lower())
    return [w for token in _WORD.findall(unicodedata.normalize("NFC", text)) for w in _fold(token)]


def _fold(token: str) -> list[str]:
    if token.isascii():
        return [token.lower()]
    plain = "".join(c for c in unicodedata.normalize("NFKD", token) if not unicodedata.combining(c))
    return _WORD.findall(plain.casefold())


# --- the index ----------------------------------------------------------------------------


class ValueEntry(NamedTuple):
    table: str  # the table's qualified name, as DatabaseSchema has it
    column: str
    value: str  # as stored in the database


@dataclass(frozen=True, kw_only=True)
class IndexedColumn:
    table: str  # qualified name
    column: str
    values: tuple[str, ...]
    namespace: str | None = None  # the table's, when ``table`` is qualified with it


@dataclass(frozen=True, kw_only=True)
class ValueIndex:
    """The distinct values of a database's low-cardinality text columns.

    ``by_value`` maps a normalized value to the columns holding it; it is derived from
    ``columns`` (what is stored), so a change to ``normalize`` applies to old indexes too."""

    columns: tuple[IndexedColumn, ...] = ()
    dialect: str = "sqlite"
    default_namespace: str | None = None
    truncated: bool = False  # a bound stopped the build before every column was read
    skipped: int = 0  # text columns left out: too many distinct values, failed or timed out
    by_value: Mapping[str, tuple[ValueEntry, ...]] = field(init=False, repr=False, compare=False)
    max_words: int = field(init=False, repr=False, compare=False)
    shown: Mapping[str, str] = field(init=False, repr=False, compare=False)  # table: as the prompt names it

    def __post_init__(self) -> None:
        found: dict[str, tuple[ValueEntry, ...]] = {}
        shown: dict[str, str] = {}
        for col in self.columns:
            shown[col.table] = _shown_table(col, self.default_namespace)
            for value in col.values:
                key = normalize(value)
                entry = ValueEntry(col.table, col.column, value)
                if key and entry not in found.get(key, ()):
                    found[key] = (*found.get(key, ()), entry)
        object.__setattr__(self, "by_value", found)
        longest = max((k.count(" ") + 1 for k in found), default=0)
        object.__setattr__(self, "max_words", min(longest, MAX_WORDS))
        object.__setattr__(self, "shown", shown)

    def __len__(self) -> int:
        return sum(len(c.values) for c in self.columns)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "dialect": self.dialect,
                "default_namespace": self.default_namespace,
                "truncated": self.truncated,
                "skipped": self.skipped,
                "columns": [
                    {"table": c.table, "namespace": c.namespace, "column": c.column, "values": list(c.values)}
                    for c in self.columns
                ],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ValueIndex:
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise ValueError(f"value index format {raw.get('format')!r}, expected {FORMAT}")
        return cls(
            columns=tuple(
                IndexedColumn(
                    table=str(c["table"]),
                    column=str(c["column"]),
                    values=tuple(map(str, c["values"])),
                    namespace=c.get("namespace"),
                )
                for c in raw["columns"]
            ),
            dialect=str(raw.get("dialect") or "sqlite"),
            default_namespace=raw.get("default_namespace"),
            truncated=bool(raw.get("truncated")),
            skipped=int(raw.get("skipped") or 0),
        )


def build_index(
    url: str,
    schema: DatabaseSchema,
    *,
    max_distinct: int = MAX_DISTINCT,
    max_values: int = MAX_VALUES,
    timeout_s: float = QUERY_TIMEOUT_S,
    budget_s: float = BUILD_BUDGET_S,
) -> ValueIndex:
    """Read the distinct values of each text column of ``schema``'s tables (views are left
    out) on a read-only connection. A column whose query fails or times out is skipped; only a
    database that cannot be reached at all raises."""
    engine = readonly_engine(url, statement_timeout_s=timeout_s)
    try:
        return _build(
            engine, schema, max_distinct=max_distinct, max_values=max_values, timeout_s=timeout_s, budget_s=budget_s
        )
    finally:
        engine.dispose()


def _build(
    engine: Engine, schema: DatabaseSchema, *, max_distinct: int, max_values: int, timeout_s: float, budget_s: float
) -> ValueIndex:
    deadline = time.monotonic() + budget_s
    kept: list[IndexedColumn] = []
    total, skipped, truncated = 0, 0, False
    candidates = [(t, c) for t in schema.tables if t.kind == "table" for c in t.columns if is_text_type(c.type)]
    conn = _open(engine, timeout_s)
    try:
        for position, (tbl, col) in enumerate(candidates):
            if time.monotonic() >= deadline or total >= max_values:
                truncated = True
                skipped += len(candidates) - position
                break
            values, conn = _distinct(engine, conn, tbl, col, max_distinct, timeout_s)
            if values is None or len(values) > max_distinct:
                skipped += 1
                continue
            shown = _kept_values(values, padded=_PADDED.fullmatch(col.type.strip().upper()) is not None)
            if total + len(shown) > max_values:
                truncated = True
                skipped += 1
                continue  # a smaller column further on may still fit
            if shown:
                kept.append(
                    IndexedColumn(table=tbl.qualified_name, column=col.name, values=shown, namespace=tbl.namespace)
                )
                total += len(shown)
    finally:
        conn.close()
    return ValueIndex(
        columns=tuple(kept),
        dialect=schema.dialect,
        default_namespace=schema.default_namespace,
        truncated=truncated,
        skipped=skipped,
    )


def _open(engine: Engine, timeout_s: float) -> Connection:
    """A connection whose every query stops at ``timeout_s`` (PostgreSQL: the
    ``statement_timeout`` readonly_engine sets; MySQL/MariaDB: the session's own limit;
    SQLite: a progress handler, rearmed by ``_distinct`` before each query)."""
    conn = engine.connect()
    raw: Any = conn.connection.dbapi_connection
    if engine.dialect.name == "sqlite":
        deadline = {"at": time.monotonic() + timeout_s}
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline["at"] else 0, 10_000)
        conn.info["value_deadline"] = deadline
    elif engine.dialect.name in ("mysql", "mariadb"):
        with raw.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            if "mariadb" in str(cursor.fetchone()[0]).lower():
                cursor.execute(f"SET SESSION max_statement_time = {timeout_s:.3f}")
            else:
                cursor.execute(f"SET SESSION max_execution_time = {int(timeout_s * 1000)}")
    return conn


def _distinct(
    engine: Engine, conn: Connection, tbl: Table, col: Column, max_distinct: int, timeout_s: float
) -> tuple[list[object] | None, Connection]:
    """Up to ``max_distinct + 1`` distinct non-null values (``None``: the query failed); the
    connection to use next (a new one when this one broke)."""
    source = table(tbl.name, column(col.name), schema=tbl.namespace)
    scan = select(source.c[col.name]).where(source.c[col.name].is_not(None)).limit(MAX_SCAN_ROWS).subquery()
    query = select(scan.c[col.name]).distinct().limit(max_distinct + 1)
    deadline = conn.info.get("value_deadline")
    if deadline is not None:
        deadline["at"] = time.monotonic() + timeout_s
    started = time.perf_counter()
    try:
        values: list[object] = list(conn.execute(query).scalars())
        conn.rollback()
        return values, conn
    except Exception as exc:  # a column we may not read, a timeout, an odd type: skip it
        log.warning(
            "value index: column skipped",
            extra={
                "fields": {
                    "table": tbl.qualified_name,
                    "column": col.name,
                    "error": type(exc).__name__,
                    "ms": round((time.perf_counter() - started) * 1000),
                }
            },
        )
        try:
            conn.rollback()
            return None, conn
        except Exception:
            conn.close()
            return None, _open(engine, timeout_s)


def _kept_values(values: Iterable[object], *, padded: bool) -> tuple[str, ...]:
    kept: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            continue
        text = value.rstrip(" ") if padded else value
        if 0 < len(text) <= MAX_VALUE_CHARS and text.strip() and not _UNSAFE.search(text) and normalize(text):
            kept[text] = None
    return tuple(sorted(kept))


# --- linking a question -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ValueLink:
    """A phrase of the question that is a stored value of ``table.column``."""

    phrase: str  # the question's words, normalized
    table: str  # the table's qualified name, as DatabaseSchema (and render_schema's ``linked``) has it
    column: str
    value: str  # as stored: the model should write exactly this
    quoted: bool = False  # the question quoted it
    shown_table: str = ""  # the table as the schema text names it (no default namespace)

    @property
    def hint(self) -> str:
        """``'Aberdeen' is a value of airports.City``"""
        return f"{sql_literal(self.value)} is a value of {self.shown_table or self.table}.{_ident(self.column)}"


class _Token(NamedTuple):
    word: str
    start: int  # character span in the (NFC) question
    end: int


def links(index: ValueIndex, question: str, *, hidden: Collection[tuple[str, str]] = ()) -> list[ValueLink]:
    """The stored values the question mentions, in question order: quoted literals first
    matched whole, then word n-grams (longest first; a phrase inside a longer matched one is
    not linked again). Stopwords, one-letter phrases and bare numbers (unless quoted) are not
    linked; neither is any column in ``hidden`` ((table, column), lower case)."""
    if not index.by_value:
        return []
    text = unicodedata.normalize("NFC", question)
    tokens = [_Token(w, m.start(), m.end()) for m in _WORD.finditer(text) for w in _fold(m.group())]
    all_words = [t.word for t in tokens]
    taken = [False] * len(tokens)
    found: list[tuple[int, ValueLink]] = []
    hidden_keys = {(t.lower(), c.lower()) for t, c in hidden}

    for match in _QUOTED.finditer(text):
        inner = next(g for g in match.groups() if g is not None)
        entries = _visible(index.by_value.get(normalize(inner), ()), hidden_keys)
        if not entries:
            continue
        span = [i for i, t in enumerate(tokens) if match.start() <= t.start and t.end <= match.end()]
        if not span or any(taken[i] for i in span):
            continue
        for i in span:
            taken[i] = True
        found.extend((span[0], _link(index, normalize(inner), e, quoted=True)) for e in entries)

    for n in range(min(index.max_words, len(tokens)), 0, -1):
        for start in range(len(tokens) - n + 1):
            if any(taken[start : start + n]):
                continue
            words = all_words[start : start + n]
            entries = _lookup(index, words, hidden_keys)
            if not entries:
                continue
            for i in range(start, start + n):
                taken[i] = True
            found.extend((start, _link(index, " ".join(words), e, quoted=False)) for e in entries)

    found.sort(key=lambda item: item[0])  # stable: a phrase's columns keep their order
    seen: dict[tuple[str, str, str], ValueLink] = {}
    for _, link in found:
        seen.setdefault((link.table, link.column, link.value), link)
    return list(seen.values())[:MAX_LINKS]


def _lookup(index: ValueIndex, words: list[str], hidden: set[tuple[str, str]]) -> tuple[ValueEntry, ...]:
    phrase = " ".join(words)
    entries = index.by_value.get(phrase, ())  # most phrases miss: look first, judge after
    last = words[-1]
    if not entries and len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        entries = index.by_value.get(phrase[:-1], ())  # "Fords" -> 'Ford'
    if not entries or len(phrase) - phrase.count(" ") < 2:
        return ()
    if all(w in STOPWORDS for w in words) or all(_NUMBER.fullmatch(w) for w in words):
        return ()
    return _visible(entries, hidden)


def _visible(entries: tuple[ValueEntry, ...], hidden: set[tuple[str, str]]) -> tuple[ValueEntry, ...]:
    if hidden:
        entries = tuple(e for e in entries if not _is_hidden(e, hidden))
    return entries[:MAX_COLUMNS_PER_PHRASE]


def _is_hidden(entry: ValueEntry, hidden: set[tuple[str, str]]) -> bool:
    col = entry.column.lower()
    qualified = entry.table.lower()
    bare = qualified.rsplit(".", 1)[-1]
    return (qualified, col) in hidden or (bare, col) in hidden


def _link(index: ValueIndex, phrase: str, entry: ValueEntry, *, quoted: bool) -> ValueLink:
    shown = index.shown.get(entry.table, entry.table)
    return ValueLink(
        phrase=phrase, table=entry.table, column=entry.column, value=entry.value, quoted=quoted, shown_table=shown
    )


def _shown_table(col: IndexedColumn, default_namespace: str | None) -> str:
    """The table as the schema text names it: without the default namespace."""
    if col.namespace is None or not col.table.startswith(col.namespace + "."):
        return _ident(col.table)
    name = _ident(col.table[len(col.namespace) + 1 :])
    return name if col.namespace == default_namespace else f"{_ident(col.namespace)}.{name}"


_PLAIN_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _ident(name: str) -> str:
    return name if _PLAIN_IDENT.fullmatch(name) else '"' + name.replace('"', '""') + '"'


# --- storage, beside the registry ---------------------------------------------------------


class ValueIndexRow(Base):
    """One database's index (migration 0009); no foreign key: ``Registry.remove`` drops it."""

    __tablename__ = "value_indexes"

    database: Mapped[str] = mapped_column(String(63), primary_key=True)
    schema_hash: Mapped[str] = mapped_column(String(64))
    built_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    values_json: Mapped[str] = mapped_column(Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"))


class RegistrySource(Protocol):
    """What the store needs of the registry to (re)build an index."""

    def connection_url(self, name: str) -> str: ...

    def get(self, name: str) -> RegisteredDatabase: ...


Builder = Callable[[str, DatabaseSchema], ValueIndex]


class ValueStore:
    """The value indexes of the registered databases, on the registry's engine."""

    def __init__(self, *, engine: Engine, source: RegistrySource, build: Builder = build_index) -> None:
        self._engine = engine
        self._source = source
        self._build = build
        self._cache: dict[str, tuple[tuple[str, dt.datetime], ValueIndex]] = {}

    def index(self, name: str) -> ValueIndex | None:
        """The database's index; ``None`` when there is none, or it was built for another
        schema than the registered one (a rebuild failed after the schema changed)."""
        with Session(self._engine) as session:
            head = session.execute(
                select(ValueIndexRow.schema_hash, ValueIndexRow.built_at, DatabaseRow.schema_hash)
                .join(DatabaseRow, DatabaseRow.name == ValueIndexRow.database)
                .where(ValueIndexRow.database == name)
            ).one_or_none()
            if head is None or head[0] != head[2]:
                self._cache.pop(name, None)
                return None
            key = (head[0], head[1])
            cached = self._cache.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
            text = session.scalar(select(ValueIndexRow.values_json).where(ValueIndexRow.database == name))
        try:
            index = ValueIndex.from_json(text or "")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("value index unreadable", extra={"fields": {"database": name, "error": type(exc).__name__}})
            return None
        self._cache[name] = (key, index)
        return index

    def rebuild(self, name: str) -> ValueIndex:
        """Read the values again and store them (raises ``UnknownDatabase``, or what the
        connection raises when the database cannot be reached)."""
        url = self._source.connection_url(name)
        entry = self._source.get(name)
        index = self._build(url, entry.schema)
        self._store(name, entry.schema_hash, index)
        return index

    def rebuild_quietly(self, name: str, *, url: str, schema: DatabaseSchema) -> ValueIndex | None:
        """Build and store the index of a database just registered or refreshed; a failure
        is logged, never raised: the registration stands without it."""
        started = time.perf_counter()
        try:
            index = self._build(url, schema)
            self._store(name, schema.hash, index)
        except Exception as exc:
            log.warning("value index not built", extra={"fields": {"database": name, "error": type(exc).__name__}})
            return None
        log.info(
            "value index built",
            extra={
                "fields": {
                    "database": name,
                    "columns": len(index.columns),
                    "values": len(index),
                    "skipped": index.skipped,
                    "truncated": index.truncated,
                    "ms": round((time.perf_counter() - started) * 1000),
                }
            },
        )
        return index

    def drop(self, name: str) -> None:
        with Session(self._engine) as session:
            session.execute(delete(ValueIndexRow).where(ValueIndexRow.database == name))
            session.commit()
        self._cache.pop(name, None)

    def _store(self, name: str, schema_hash: str, index: ValueIndex) -> None:
        with Session(self._engine) as session:
            session.merge(
                ValueIndexRow(
                    database=name,
                    schema_hash=schema_hash,
                    built_at=dt.datetime.now(dt.UTC),
                    values_json=index.to_json(),
                )
            )
            session.commit()
        self._cache.pop(name, None)
