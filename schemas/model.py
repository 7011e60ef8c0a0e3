"""A database schema snapshot: what introspection finds and what the guard checks against."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.dialects import Dialect, fold, fold_column


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Column(_Frozen):
    name: str
    type: str
    nullable: bool = True
    comment: str | None = None
    samples: tuple[str, ...] = ()


class ForeignKey(_Frozen):
    columns: tuple[str, ...]
    ref_namespace: str | None = None
    ref_table: str
    ref_columns: tuple[str, ...]


class Table(_Frozen):
    namespace: str | None = None
    name: str
    kind: Literal["table", "view"] = "table"
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    comment: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name


class DatabaseSchema(_Frozen):
    """All tables of one database.

    ``default_namespace`` is where an unqualified table name is looked up
    (PostgreSQL's ``public``, the MySQL database itself, ``None`` for SQLite).
    """

    dialect: Dialect
    default_namespace: str | None = None
    tables: tuple[Table, ...] = Field(default=())

    @property
    def hash(self) -> str:
        """A stable fingerprint: equal schemas hash equal, any change changes it."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def find_table(self, name: str, namespace: str | None = None, *, quoted: bool = False) -> Table | None:
        """Find a table the way the engine would resolve the identifier."""
        wanted_ns = namespace if namespace is not None else self.default_namespace
        key = fold(self.dialect, name, quoted=quoted)
        for table in self.tables:
            if fold(self.dialect, table.name, quoted=True) != key and table.name != key:
                continue
            if table.namespace is None:
                # SQLite: only the main database is registered, not temp or attached ones.
                if wanted_ns is None or wanted_ns.lower() == "main":
                    return table
            elif wanted_ns is None or _ns_match(self.dialect, table.namespace, wanted_ns):
                return table
        return None

    def find_column(self, table: Table, name: str, *, quoted: bool = False) -> Column | None:
        key = fold_column(self.dialect, name, quoted=quoted)
        for column in table.columns:
            if fold_column(self.dialect, column.name, quoted=True) == key or column.name == key:
                return column
        return None


def _ns_match(dialect: Dialect, a: str, b: str) -> bool:
    return fold(dialect, a, quoted=True) == fold(dialect, b, quoted=False) or a == b
