"""Parse registered URLs and open read-only engines on them.

Every connection chat2sql opens to a registered database is read-only at the database
level (SQLite ``mode=ro``; PostgreSQL ``default_transaction_read_only``; MySQL/MariaDB
``SET SESSION TRANSACTION READ ONLY``), so that neither introspection nor a preview can
write, whatever SQL reaches it.

A URL is built from an allowlist of parts: a TCP host, a port, a database and, per
driver, only the query parameters a user needs (TLS files and modes, a connect timeout).
Anything else a driver would act on (``local_infile``, ``init_command``, ``options``,
``host=/var/run/postgresql``, ``unix_socket``, ``password=`` …) is refused by name.
Errors never echo the URL's user or password part.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from chat2sql.errors import InvalidURL
from chat2sql.settings import Settings
from schemas.dialects import Dialect, dialect_for_backend

CONNECT_TIMEOUT_S = 10
SQLITE_HEADER = b"SQLite format 3\x00"
_NO_FILE = f"{os.devnull}/none"  # never exists (a path below a device): libpq skips it silently
_DRIVERS: dict[Dialect, str] = {"postgres": "psycopg", "mysql": "pymysql", "sqlite": "pysqlite"}
_LABELS: dict[Dialect, str] = {"postgres": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}

_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_POSITIVE_INT = re.compile(r"[1-9][0-9]{0,3}")
_CHARSET = re.compile(r"[a-z0-9_]{1,32}")
_PRINTABLE = re.compile(r"[\x20-\x7e]{1,63}")
_FILE_PATH = re.compile(r"[^\x00-\x1f\x7f]{1,4096}")


def _choice(*values: str) -> Callable[[str], bool]:
    return lambda value: value in values


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.fullmatch(value) is not None


def _bool(value: str) -> bool:
    return value.lower() in _BOOL_WORDS


# What each query parameter may hold; a parameter that is not listed is refused.
_QUERY: dict[Dialect, dict[str, Callable[[str], bool]]] = {
    "postgres": {
        "sslmode": _choice("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
        "sslrootcert": _matches(_FILE_PATH),
        "sslcert": _matches(_FILE_PATH),
        "sslkey": _matches(_FILE_PATH),
        "sslcrl": _matches(_FILE_PATH),
        "connect_timeout": _matches(_POSITIVE_INT),
        "application_name": _matches(_PRINTABLE),
        "target_session_attrs": _choice("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    },
    "mysql": {
        "charset": _matches(_CHARSET),
        "ssl_ca": _matches(_FILE_PATH),
        "ssl_cert": _matches(_FILE_PATH),
        "ssl_key": _matches(_FILE_PATH),
        "ssl_verify_cert": _bool,
        "ssl_verify_identity": _bool,
        "connect_timeout": _matches(_POSITIVE_INT),
    },
    "sqlite": {},
}
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?")
_SHOWABLE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")
_MALFORMED = (
    "it is malformed; expected a URL like postgresql://user:password@host:5432/dbname "
    "(percent-encode @ : / ? # % in the user name and password, e.g. @ as %40)"
)


def parse_url(url: str) -> URL:
    """Check that ``url`` names a supported database from allowed parts; no connection yet.

    >>> parse_url("mysql://bob:pw@db/sales?local_infile=1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    chat2sql.errors.InvalidURL: the query parameter 'local_infile' is not allowed in MySQL/MariaDB URLs (...)
    """
    if not url or not url.strip():
        raise InvalidURL("it is empty")
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError):
        raise InvalidURL(_MALFORMED) from None
    dialect = dialect_for_backend(parsed.get_backend_name())
    _check_query(parsed, dialect)
    if dialect == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise InvalidURL("an in-memory SQLite database cannot be registered; give a file path")
        if parsed.host or parsed.username or parsed.password is not None:
            raise InvalidURL("an SQLite URL names a file only: sqlite:///path/to/file.db")
        return parsed
    if parsed.host and "@" in parsed.host:
        raise InvalidURL(_MALFORMED)
    if not parsed.database:
        raise InvalidURL("it names no database (add /dbname at the end)")
    if not parsed.host:
        raise InvalidURL("it names no host")
    _check_host(parsed.host, dialect)
    if dialect == "postgres" and ("=" in parsed.database or "://" in parsed.database):
        raise InvalidURL("the database name may not hold '=' or '://' (libpq would read it as connection settings)")
    return parsed


def _check_query(parsed: URL, dialect: Dialect) -> None:
    allowed = _QUERY[dialect]
    for key in sorted(parsed.query):
        shown = f"'{key}'" if _SHOWABLE_KEY.fullmatch(key) else "with an unusual name"
        if key not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            label = _LABELS[dialect]
            raise InvalidURL(f"the query parameter {shown} is not allowed in {label} URLs (allowed: {names})")
        value = parsed.query[key]
        if not isinstance(value, str):
            raise InvalidURL(f"the query parameter {shown} is given more than once")
        if not allowed[key](value):
            raise InvalidURL(f"the query parameter {shown} has a value that is not allowed")


def _check_host(host: str, dialect: Dialect) -> None:
    if host.startswith("/"):
        raise InvalidURL("a local socket path cannot be registered as the host; give a TCP host name or address")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host) or len(host) > 253:
        raise InvalidURL(f"its host is not a valid {_LABELS[dialect]} host name or IP address")


def dialect_of(url: str | URL) -> Dialect:
    parsed = url if isinstance(url, URL) else parse_url(url)
    return dialect_for_backend(parsed.get_backend_name())


def sqlite_path(url: URL) -> Path:
    return Path(url.database or "").expanduser()


# --- what a registration may point at ---------------------------------------------------


Resolver = Callable[[str, int | None], Iterable[str]]


def resolve_host(host: str, port: int | None) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), as text."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


@dataclass(frozen=True, kw_only=True)
class HostAllowlist:
    """``CHAT2SQL_ALLOWED_DB_HOSTS``: host names and CIDR networks a registered database may
    resolve to; every address of the target must fall inside."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hostnames: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> HostAllowlist:
        networks, hostnames = [], []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hostnames.append(entry.lower().rstrip("."))
        return cls(networks=tuple(networks), hostnames=tuple(hostnames))

    def allows(self, host: str, port: int | None, *, resolve: Resolver = resolve_host) -> bool:
        addresses = list(resolve(host, port))
        if not addresses:
            return False
        allowed = set(self.networks)
        for name in self.hostnames:
            allowed.update(ipaddress.ip_network(a) for a in resolve(name, port))
        return all(any(ipaddress.ip_address(a) in net for net in allowed) for a in addresses)


@dataclass(frozen=True, kw_only=True)
class RegistrationPolicy:
    """What a registered URL may point at, beyond its shape: never chat2sql's own files
    (the registry database, the key, caches) and, when configured, only allowed hosts."""

    protected_files: tuple[Path, ...] = ()
    protected_dirs: tuple[Path, ...] = ()
    exempt_dirs: tuple[Path, ...] = ()
    allowed_hosts: HostAllowlist | None = None
    resolve: Resolver = resolve_host

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistrationPolicy:
        files = [settings.secret_key_file]
        registry = make_url(settings.effective_registry_url)
        if registry.get_backend_name() == "sqlite" and registry.database:
            db = Path(registry.database).expanduser()
            files += [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
        entries = settings.allowed_db_host_entries
        return cls(
            protected_files=tuple(files),
            protected_dirs=(settings.data_dir,),
            exempt_dirs=(settings.samples_dir,),
            allowed_hosts=HostAllowlist.parse(entries) if entries else None,
        )

    def check(self, url: URL) -> None:
        if dialect_of(url) == "sqlite":
            self._check_sqlite_file(sqlite_path(url))
        elif self.allowed_hosts is not None and not self.allowed_hosts.allows(
            url.host or "", url.port, resolve=self.resolve
        ):
            raise InvalidURL(
                f"its host {url.host} is not in CHAT2SQL_ALLOWED_DB_HOSTS "
                "(every address the host resolves to must be in an allowed network or host)"
            )

    def _check_sqlite_file(self, path: Path) -> None:
        if not path.is_file():
            raise InvalidURL(f"no SQLite database file at {path}")
        resolved = path.resolve()
        for protected in self.protected_files:
            if _same_file(resolved, protected):
                raise InvalidURL("it is one of chat2sql's own files (the registry database or its key)")
        inside = any(resolved.is_relative_to(d.resolve()) for d in self.protected_dirs)
        exempt = any(resolved.is_relative_to(d.resolve()) for d in self.exempt_dirs)
        if inside and not exempt:
            raise InvalidURL("it is inside chat2sql's data folder (registry, keys, caches); register a copy elsewhere")
        try:
            with resolved.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError:
            raise InvalidURL(f"the SQLite file at {path} cannot be read") from None
        if header != SQLITE_HEADER:
            raise InvalidURL(f"the file at {path} is not an SQLite database")


def _same_file(resolved: Path, protected: Path) -> bool:
    try:
        return resolved == protected.resolve() or (protected.exists() and os.path.samefile(resolved, protected))
    except OSError:
        return False


# --- engines ------------------------------------------------------------------------------


def readonly_engine(url: str, *, statement_timeout_s: float) -> Engine:
    """An engine whose every connection is read-only at the database level."""
    parsed = parse_url(url)
    dialect = dialect_of(parsed)
    if dialect == "sqlite":
        return _sqlite_engine(parsed)
    query = dict(parsed.query)
    driver_url = parsed.set(drivername=f"{parsed.get_backend_name()}+{_DRIVERS[dialect]}", query={})
    timeout_ms = int(statement_timeout_s * 1000)
    connect_timeout = min(int(str(query.pop("connect_timeout", CONNECT_TIMEOUT_S))), CONNECT_TIMEOUT_S)
    if dialect == "postgres":
        connect_args = _postgres_args(query, timeout_ms=timeout_ms)
    else:
        connect_args = _mysql_args(query, read_timeout_s=int(statement_timeout_s) + CONNECT_TIMEOUT_S)
    connect_args["connect_timeout"] = connect_timeout
    engine = create_engine(driver_url, connect_args=connect_args, poolclass=NullPool)
    if dialect == "mysql":
        event.listen(engine, "connect", _mysql_session_readonly)
    return engine


def _postgres_args(query: dict[str, Any], *, timeout_ms: int) -> dict[str, Any]:
    import psycopg

    args: dict[str, Any] = {
        **query,
        "options": (
            f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}"
            f" -c idle_in_transaction_session_timeout={max(timeout_ms * 4, 60_000)}"
        ),
        # The bot host's own credentials stay out of it: no ~/.pgpass, no Kerberos ticket.
        "passfile": _NO_FILE,
        "gssencmode": "disable",
    }
    if psycopg.pq.version() >= 160000:
        args["require_auth"] = "!gss,!sspi"
    return args


def _mysql_args(query: dict[str, Any], *, read_timeout_s: int) -> dict[str, Any]:
    from pymysql.constants import CLIENT

    args: dict[str, Any] = {"read_timeout": read_timeout_s}
    ssl = {key.removeprefix("ssl_"): query.pop(key) for key in ("ssl_ca", "ssl_cert", "ssl_key") if key in query}
    if ssl:
        args["ssl"] = ssl
    for key in ("ssl_verify_cert", "ssl_verify_identity"):
        if key in query:
            args[key] = _BOOL_WORDS[str(query.pop(key)).lower()]
    args.update(query)  # charset
    # A server may ask the client for any local file (LOAD DATA LOCAL): never.
    args["local_infile"] = False
    args["client_flag"] = CLIENT.FOUND_ROWS  # what SQLAlchemy sets; no LOCAL_FILES, no MULTI_STATEMENTS
    return args


def _mysql_session_readonly(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_path(url)
    if not path.is_file():
        raise InvalidURL(f"no SQLite database file at {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"

    def _connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=CONNECT_TIMEOUT_S)
        conn.execute("PRAGMA query_only = ON")
        return conn

    return create_engine("sqlite+pysqlite://", creator=_connect, poolclass=NullPool)
