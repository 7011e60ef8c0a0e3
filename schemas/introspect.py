"""Read a database's schema through SQLAlchemy's inspector, on a read-only connection.

Batched reflection (``get_multi_*``) keeps a 300-table PostgreSQL schema to a handful
of catalogue queries; sample values come from a bounded scan of each table.
``inspect_account`` reports what the connecting account could do beyond reading.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, column, inspect, select, table, text
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


# --- the account a registration connects as -----------------------------------------------

MAX_LISTED = 20
PG_SERVER_FILE_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
MYSQL_WRITE_PRIVILEGES = frozenset(
    {
        "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE", "INDEX", "TRIGGER", "CREATE VIEW",
        "CREATE ROUTINE", "ALTER ROUTINE", "EVENT", "DELETE HISTORY", "ALL PRIVILEGES", "ALL",
    }
)  # fmt: skip
_GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<target>.+?) TO ", re.S)


class AccountReport(BaseModel):
    """What the registered account can do besides reading, from the server's own catalogue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str | None = None
    superuser: bool = False
    server_files: tuple[str, ...] = ()  # pg_read_server_files…, MySQL FILE
    other_privileges: tuple[str, ...] = ()  # CREATEROLE, SUPER, GRANT OPTION…
    write_grants: tuple[str, ...] = ()  # "INSERT, UPDATE on public.orders", "INSERT ON `db`.*"
    write_grants_total: int = 0
    owned_tables: tuple[str, ...] = ()
    owned_tables_total: int = 0
    allowed_privileged: bool = False  # registered with --allow-privileged

    @property
    def privileged(self) -> bool:
        """Superuser or server-file access: the account can reach beyond the database."""
        return self.superuser or bool(self.server_files)

    def findings(self) -> list[str]:
        """One short line per finding; empty for a plain reader."""
        lines = []
        if self.superuser:
            lines.append("superuser")
        if self.server_files:
            lines.append("server file access: " + ", ".join(self.server_files))
        if self.other_privileges:
            lines.append("privileges: " + ", ".join(self.other_privileges))
        if self.write_grants_total:
            listed = _listed(self.write_grants, self.write_grants_total)
            lines.append(f"write privileges ({self.write_grants_total}): {listed}")
        if self.owned_tables_total:
            listed = _listed(self.owned_tables, self.owned_tables_total)
            lines.append(f"owns tables ({self.owned_tables_total}): {listed}")
        return lines

    def summary(self) -> str:
        who = self.user or "the account"
        findings = self.findings()
        if not findings:
            return f"{who}: read-only (no superuser, no server-file access, no write privileges)"
        return f"{who}: " + "; ".join(findings)


def _listed(items: tuple[str, ...], total: int) -> str:
    more = f", … {total - len(items)} more" if total > len(items) else ""
    return ", ".join(items) + more


def inspect_account(engine: Engine) -> AccountReport:
    dialect = dialect_for_backend(engine.dialect.name)
    if dialect == "sqlite":
        return AccountReport()  # a file opened read-only: no account
    with engine.connect() as conn:
        report = _pg_account(conn) if dialect == "postgres" else _mysql_account(conn)
        conn.rollback()
    return report


def inspect_account_url(url: str, *, timeout_s: float = 30.0) -> AccountReport:
    engine = readonly_engine(url, statement_timeout_s=timeout_s)
    try:
        return inspect_account(engine)
    finally:
        engine.dispose()


def _pg_account(conn: Any) -> AccountReport:
    user, superuser, createrole, createdb, replication, bypassrls = conn.execute(
        text(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname = current_user"
        )
    ).one()
    roles = conn.execute(
        text(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)"
            " AND pg_has_role(current_user, oid, 'MEMBER') ORDER BY rolname"
        ),
        {"names": list(PG_SERVER_FILE_ROLES)},
    ).scalars()
    other = [
        flag
        for flag, on in (
            ("CREATEROLE", createrole),
            ("CREATEDB", createdb),
            ("REPLICATION", replication),
            ("BYPASSRLS", bypassrls),
        )
        if on
    ]
    tables = conn.execute(
        text(
            """
            SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name,
                   concat_ws(', ',
                       CASE WHEN has_table_privilege(c.oid, 'INSERT') THEN 'INSERT' END,
                       CASE WHEN has_table_privilege(c.oid, 'UPDATE') THEN 'UPDATE' END,
                       CASE WHEN has_table_privilege(c.oid, 'DELETE') THEN 'DELETE' END,
                       CASE WHEN has_table_privilege(c.oid, 'TRUNCATE') THEN 'TRUNCATE' END) AS writes,
                   pg_has_role(current_user, c.relowner, 'USAGE') AS owned
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
            ORDER BY 1
            """
        )
    ).all()
    writes = [f"{w} on {name}" for name, w, _ in tables if w]
    owned = [name for name, _, o in tables if o]
    return AccountReport(
        user=str(user),
        superuser=bool(superuser),
        server_files=tuple(roles),
        other_privileges=tuple(other),
        write_grants=tuple(writes[:MAX_LISTED]),
        write_grants_total=len(writes),
        owned_tables=tuple(owned[:MAX_LISTED]),
        owned_tables_total=len(owned),
    )


def _mysql_account(conn: Any) -> AccountReport:
    user = conn.execute(text("SELECT CURRENT_USER()")).scalar()
    grants = [str(row[0]) for row in conn.execute(text("SHOW GRANTS"))]
    return mysql_account_from_grants(str(user), grants)


def mysql_account_from_grants(user: str, grants: Iterable[str]) -> AccountReport:
    """Read ``SHOW GRANTS`` lines.

    >>> mysql_account_from_grants("r@h", ["GRANT SELECT, INSERT ON `shop`.* TO `r`@`h`"]).write_grants
    ('INSERT ON `shop`.*',)
    """
    superuser, files, other, writes = False, [], [], []
    for line in grants:
        match = _GRANT.match(line)
        if match is None:  # GRANT role TO user (MariaDB roles), PROXY…
            continue
        privileges = _split_privileges(match["privs"])
        target = match["target"].strip()
        everywhere = target == "*.*"
        if " WITH GRANT OPTION" in line.upper() and "USAGE" not in privileges:
            other.append(f"GRANT OPTION ON {target}")
        if "PROXY" in privileges:
            other.append(f"PROXY ON {target}")
        if everywhere and ("SUPER" in privileges or "ALL PRIVILEGES" in privileges):
            superuser = True
        if everywhere and ("FILE" in privileges or "ALL PRIVILEGES" in privileges):
            files.append("FILE")
        if everywhere and "ALL PRIVILEGES" in privileges:
            other.append("ALL PRIVILEGES ON *.*")
        if everywhere and "SUPER" in privileges:
            other.append("SUPER")
        written = [p for p in privileges if p.split("(")[0].strip() in MYSQL_WRITE_PRIVILEGES]
        if written:
            writes.append(f"{', '.join(written)} ON {target}")
    return AccountReport(
        user=user,
        superuser=superuser,
        server_files=tuple(dict.fromkeys(files)),
        other_privileges=tuple(dict.fromkeys(other)),
        write_grants=tuple(writes[:MAX_LISTED]),
        write_grants_total=len(writes),
    )


def _split_privileges(text_: str) -> list[str]:
    """'SELECT, UPDATE (a, b), INSERT' -> ['SELECT', 'UPDATE (a, b)', 'INSERT'], upper case."""
    parts, depth, current = [], 0, ""
    for char in text_:
        if char == "," and depth == 0:
            parts.append(current.strip().upper())
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current.strip().upper())
    return [p for p in parts if p]
