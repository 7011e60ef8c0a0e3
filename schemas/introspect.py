"""Read a database's schema through SQLAlchemy's inspector, on a read-only connection.

Batched reflection (``get_multi_*``) keeps a 300-table PostgreSQL schema to a handful
of catalogue queries; sample values come from a bounded scan of each table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from typing import Any

from sqlalchemy import Engine, column, inspect, select, table
from sqlalchemy.engine.reflection import Inspector, ObjectKind
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeEngine

from schemas.connect import readonly_engine
from schemas.dialects import Dialect, dialect_for_backend
from schemas.model import Column, DatabaseSchema, ForeignKey, Table

log = logging.getLogger(__name__)

MAX_SAMPLE_CHARS = 60
SAMPLE_SCAN_ROWS = 1000
_PG_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


def introspect(engine: Engine, *, samples: int = 5) -> DatabaseSchema:
    """Snapshot every table and view the connection can see in its default namespace(s)."""
    dialect = dialect_for_backend(engine.dialect.name)
    with engine.connect() as conn:
        inspector = inspect(conn)
        default_ns = inspector.default_schema_name if dialect != "sqlite" else None
        tables: list[Table] = []
        for namespace in _namespaces(inspector, dialect):
            tables.extend(_read_namespace(inspector, namespace, dialect))
        if samples:
            tables = [_with_samples(conn, t, dialect, samples) for t in tables]
        conn.rollback()
    tables.sort(key=lambda t: (t.namespace or "", t.name))
    return DatabaseSchema(dialect=dialect, default_namespace=default_ns, tables=tuple(tables))


def introspect_url(url: str, *, samples: int = 5, timeout_s: float = 30.0) -> DatabaseSchema:
    """Open a read-only engine on ``url``, snapshot it, close the engine."""
    engine = readonly_engine(url, statement_timeout_s=timeout_s)
    try:
        return introspect(engine, samples=samples)
    finally:
        engine.dispose()


def _namespaces(inspector: Inspector, dialect: Dialect) -> list[str | None]:
    if dialect == "sqlite":
        return [None]
    if dialect == "mysql":
        return [inspector.default_schema_name]
    return [ns for ns in inspector.get_schema_names() if ns not in _PG_SYSTEM_SCHEMAS and not ns.startswith("pg_")]


def _read_namespace(inspector: Inspector, namespace: str | None, dialect: Dialect) -> list[Table]:
    kind = ObjectKind.TABLE | ObjectKind.VIEW | ObjectKind.MATERIALIZED_VIEW
    columns = inspector.get_multi_columns(schema=namespace, kind=kind)
    pks = inspector.get_multi_pk_constraint(schema=namespace, kind=ObjectKind.TABLE)
    fks = inspector.get_multi_foreign_keys(schema=namespace, kind=ObjectKind.TABLE)
    comments = _comments(inspector, namespace)
    views = set(inspector.get_view_names(schema=namespace))
    if dialect == "postgres":
        views |= set(inspector.get_materialized_view_names(schema=namespace))
    stored_ns = namespace if dialect != "sqlite" else None
    result: list[Table] = []
    for (_, name), cols in columns.items():
        key = (namespace, name)
        result.append(
            Table(
                namespace=stored_ns,
                name=name,
                kind="view" if name in views else "table",
                columns=tuple(_column(c) for c in cols),
                primary_key=_pk_columns(pks.get(key)),
                foreign_keys=tuple(_foreign_keys(fks.get(key, []), stored_ns)),
                comment=comments.get(key),
            )
        )
    return result


def _pk_columns(pk: Mapping[str, Any] | None) -> tuple[str, ...]:
    return tuple(pk.get("constrained_columns") or ()) if pk else ()


def _comments(inspector: Inspector, namespace: str | None) -> Mapping[tuple[str | None, str], str]:
    try:
        raw = inspector.get_multi_table_comment(schema=namespace, kind=ObjectKind.ANY)
    except NotImplementedError:  # SQLite keeps no comments
        return {}
    return {key: str(value["text"]) for key, value in raw.items() if value.get("text")}


def _column(info: Mapping[str, Any]) -> Column:
    return Column(
        name=info["name"],
        type=_type_name(info["type"]),
        nullable=bool(info.get("nullable", True)),
        comment=info.get("comment") or None,
    )


def _type_name(type_: TypeEngine[Any]) -> str:
    try:
        return str(type_.compile()).upper()
    except Exception:
        return type(type_).__name__.upper()


def _foreign_keys(raw: Iterable[Mapping[str, Any]], own_ns: str | None) -> Iterable[ForeignKey]:
    for fk in raw:
        if not fk.get("referred_table"):
            continue
        yield ForeignKey(
            columns=tuple(fk["constrained_columns"]),
            ref_namespace=fk.get("referred_schema") or own_ns,
            ref_table=fk["referred_table"],
            ref_columns=tuple(fk["referred_columns"]),
        )


def _is_text(type_name: str) -> bool:
    upper = type_name.upper()
    return any(word in upper for word in ("CHAR", "TEXT", "STRING", "ENUM", "CITEXT"))


def _with_samples(conn: Any, tbl: Table, dialect: Dialect, limit: int) -> Table:
    """Attach a few distinct short values per text column, for grounding ('Engineering')."""
    if tbl.kind != "table":
        return tbl
    new_columns = []
    for col in tbl.columns:
        if not _is_text(col.type):
            new_columns.append(col)
            continue
        new_columns.append(col.model_copy(update={"samples": _sample(conn, tbl, col, limit)}))
    return tbl.model_copy(update={"columns": tuple(new_columns)})


def _sample(conn: Any, tbl: Table, col: Column, limit: int) -> tuple[str, ...]:
    source = table(tbl.name, column(col.name), schema=tbl.namespace)
    scan = select(source.c[col.name]).limit(SAMPLE_SCAN_ROWS).subquery()
    query = select(scan.c[col.name]).where(scan.c[col.name].is_not(None)).distinct().limit(limit * 3)
    try:
        with conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext():
            values = conn.execute(query).scalars().all()
    except SQLAlchemyError as exc:
        log.warning("sampling failed", extra={"fields": {"table": tbl.qualified_name, "error": type(exc).__name__}})
        return ()
    kept = [str(v) for v in values if isinstance(v, str) and 0 < len(v) <= MAX_SAMPLE_CHARS]
    return tuple(sorted(kept)[:limit])
