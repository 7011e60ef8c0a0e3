"""How each supported engine names and matches identifiers.

SQLAlchemy names backends (``postgresql``, ``mysql``, ``mariadb``, ``sqlite``);
sqlglot names dialects (``postgres``, ``mysql``, ``sqlite``). Everything in
``schemas`` speaks the sqlglot name.
"""

from __future__ import annotations

from typing import Literal

from chat2sql.errors import UnsupportedDialect

Dialect = Literal["sqlite", "postgres", "mysql"]

_BACKENDS: dict[str, Dialect] = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}


def dialect_for_backend(backend: str) -> Dialect:
    try:
        return _BACKENDS[backend]
    except KeyError:
        raise UnsupportedDialect(backend) from None


def fold(dialect: Dialect, name: str, *, quoted: bool) -> str:
    """The key under which the engine finds an identifier.

    PostgreSQL folds unquoted names to lower case and matches quoted ones exactly;
    SQLite matches every identifier case-insensitively; MySQL/MariaDB on Linux matches
    table names exactly and column names case-insensitively (``fold`` is used for
    tables; see ``fold_column``).
    """
    if dialect == "postgres":
        return name if quoted else name.lower()
    if dialect == "sqlite":
        return name.lower()
    return name


def fold_column(dialect: Dialect, name: str, *, quoted: bool) -> str:
    if dialect == "mysql":
        return name.lower()
    return fold(dialect, name, quoted=quoted)
