"""Registration refuses what would let a URL reach beyond the database it names.

- query parameters outside each driver's allowlist (``local_infile``, ``init_command``,
  ``host=/var/run/postgresql``…) are refused by name, before anything connects;
- passwords are masked by URL structure and never given away by a substring replace;
- chat2sql's own files and non-SQLite files cannot be registered as SQLite databases;
- ``CHAT2SQL_ALLOWED_DB_HOSTS`` limits where a registration may point;
- superuser / server-file accounts need ``--allow-privileged``; the findings are shown;
- a rogue MySQL server asking for a local file (LOAD DATA LOCAL) gets nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import struct
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
from pydantic import ValidationError
from pymysql.constants import CLIENT
from sqlalchemy.exc import SQLAlchemyError

from bot.core.assistant import Assistant
from chat2sql.errors import ConnectionFailed, InvalidFunctionName, InvalidURL, PrivilegedAccount, UnknownDatabase
from chat2sql.messages import user_message
from chat2sql.redact import mask_url, redact
from chat2sql.settings import Settings
from schemas.connect import HostAllowlist, parse_url, readonly_engine
from schemas.introspect import mysql_account_from_grants
from schemas.registry import Registry
from tests.support.assistant import ADMIN, ALICE, make_assistant
from tests.support.cli import Cli
from tests.support.clients import ScriptedClient
from tests.support.databases import (
    PG_ADMIN,
    make_sqlite,
    my_admin,
    my_create_database,
    my_drop_database,
    pg_admin,
    pg_create_database,
    pg_drop_database,
    pg_reader_url,
    with_password,
)

# --- query parameters -----------------------------------------------------------------------

PG_REFUSED = (
    "options",
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "passfile",
    "service",
    "servicefile",
    "dbname",
    "sslpassword",
    "krbsrvname",
    "gssencmode",
    "require_auth",
    "replication",
)
MY_REFUSED = (
    "local_infile",
    "init_command",
    "unix_socket",
    "password",
    "passwd",
    "read_default_file",
    "read_default_group",
    "client_flag",
    "autocommit",
    "defer_connect",
    "bind_address",
    "program_name",
    "server_public_key",
    "ssl_disabled",
    "ssl_capath",
    "auth_plugin_map",
)
SQLITE_REFUSED = ("mode", "uri", "check_same_thread", "timeout", "cache", "vfs", "immutable")
REFUSED = (
    [("postgresql://u@db.example:5432/sales", p) for p in PG_REFUSED]
    + [("mysql://u@db.example:3306/sales", p) for p in MY_REFUSED]
    + [("mariadb://u@db.example:3306/sales", p) for p in ("local_infile", "init_command", "unix_socket")]
)


@pytest.mark.parametrize(("base", "param"), REFUSED, ids=[f"{b.split(':')[0]}-{p}" for b, p in REFUSED])
def test_refused_parameter_is_named(registry: Registry, base: str, param: str) -> None:
    with pytest.raises(InvalidURL) as info:
        registry.add("x", f"{base}?{param}=/var/run/postgresql", registered_by="t")
    message = user_message(info.value)
    assert f"'{param}'" in message and "not allowed" in message
    assert registry.list() == []


@pytest.mark.parametrize("param", SQLITE_REFUSED)
def test_refused_sqlite_parameter_is_named(registry: Registry, sqlite_url: str, param: str) -> None:
    with pytest.raises(InvalidURL) as info:
        registry.add("x", f"{sqlite_url}?{param}=1", registered_by="t")
    assert f"'{param}'" in user_message(info.value)
    assert registry.list() == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@db:5432/sales?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem&connect_timeout=5"
        "&application_name=chat2sql&target_session_attrs=read-only&sslcert=/c.pem&sslkey=/k.pem&sslcrl=/crl.pem",
        "mysql://u:pw@db:3306/sales?charset=utf8mb4&ssl_ca=/ca.pem&ssl_cert=/c.pem&ssl_key=/k.pem"
        "&ssl_verify_cert=true&ssl_verify_identity=1&connect_timeout=5",
    ],
)
def test_allowed_parameters_parse(url: str) -> None:
    assert parse_url(url).query


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@db/sales?sslmode=maybe",
        "postgresql://u@db/sales?connect_timeout=-1",
        "postgresql://u@db/sales?sslmode=require&sslmode=disable",
        "mysql://u@db/sales?ssl_verify_cert=perhaps",
        "mysql://u@db/sales?charset=utf8;SET",
    ],
)
def test_bad_values_of_allowed_parameters(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@%2Fvar%2Frun%2Fpostgresql/sales",
        "postgresql://u@db,other/sales",
        "mysql://u@%2Ftmp%2Fmysql.sock/sales",
        "postgresql://u@db/host=%2Ftmp dbname=x",
    ],
)
def test_socket_paths_and_odd_hosts_are_refused(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)
    with pytest.raises(InvalidURL):
        readonly_engine(url, statement_timeout_s=1)


def test_pymysql_connections_never_allow_local_files(my_url: str) -> None:
    engine = readonly_engine(my_url, statement_timeout_s=5)
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            assert raw._local_infile is False
            assert raw.client_flag & CLIENT.LOCAL_FILES == 0
            assert raw.client_flag & CLIENT.MULTI_STATEMENTS == 0
    finally:
        engine.dispose()


# --- passwords --------------------------------------------------------------------------------

PASSWORDS = ["ex", "e", "*", "p@ss", "a:b/c%d?e#f", "пароль€", "pw with space", "***"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_redact_never_shows_the_password_or_where_it_is(password: str) -> None:
    texts = [
        f"password authentication failed: {password}",
        f"token expired for user bob ({password})",
        f"prefix{password}suffix and more",
        f"postgresql://bob:{password}@db/sales refused",
        "expired examples exist",
    ]
    for text in texts:
        cleaned = redact(text, password)
        assert password not in cleaned, (text, cleaned)
    # a short password is never replaced inside a word, where the gap would point at it
    assert redact("the session expired", "ex") == "the session ***"


def test_url_structure_masks_an_unencoded_at() -> None:
    assert "ss@host" not in redact("postgresql://u:p@ss@host/db failed")
    assert "p%40ss" not in mask_url("postgresql://u:p%40ss@host/db")
    assert mask_url("postgresql://u:p%40ss@host/db") == "postgresql://u:***@host/db"
    assert "hunter2" not in mask_url("postgresql://u@host/db?password=hunter2")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:hunter@2secret@db.example/sales",
        "mysql://alice:hunter@2secret@db.example:3306/sales",
        "postgresql://alice:hunter@2secret:9@db.example:5432/sales",
        "postgresql://alice:hunter@2secret@db.example",
    ],
)
def test_malformed_url_echoes_no_part_of_the_userinfo(registry: Registry, url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        registry.add("x", url, registered_by="t")
    message = user_message(info.value)
    for part in ("alice", "hunter", "2secret", "secret@"):
        assert part not in message, message
    assert registry.list() == []


def test_malformed_url_says_to_percent_encode(registry: Registry) -> None:
    with pytest.raises(InvalidURL) as info:
        registry.add("x", "postgresql://alice:hunter@2secret@db.example/sales", registered_by="t")
    assert "percent-encode" in user_message(info.value) and "%40" in user_message(info.value)


def test_registered_password_with_odd_characters_is_masked(settings: Settings, pg_url: str) -> None:
    password = "p@ss/w:rd%é"
    reg = Registry.open(settings)
    try:
        entry = reg.add("pg", with_password(pg_url, password), registered_by="t")
        shown = entry.url_masked + json.dumps(entry.to_json())
        assert password not in shown and "p%40ss" not in shown and "***" in entry.url_masked
    finally:
        reg.close()


def test_unreachable_short_password_is_not_given_away(registry: Registry) -> None:
    with pytest.raises(ConnectionFailed) as info:  # "Connection refused" holds "ec"
        registry.add("x", "postgresql://bob:ec@127.0.0.1:1/db", registered_by="t")
    assert "ec" not in info.value.detail and "***" in info.value.detail


# --- SQLite files -----------------------------------------------------------------------------


def test_the_registry_itself_is_refused(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    db = settings.data_dir / "registry.db"
    assert db.is_file()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "link.db").symlink_to(db)
    os.link(db, outside / "hard.db")
    for url in (
        f"sqlite:///{db}",
        f"sqlite:///{settings.data_dir}/../data/registry.db",
        f"sqlite:///{outside / 'link.db'}",
        f"sqlite:///{outside / 'hard.db'}",
    ):
        with pytest.raises(InvalidURL) as info:
            registry.add("x", url, registered_by="t")
        assert "chat2sql's own files" in user_message(info.value), url
    assert registry.list() == []


def test_a_registry_outside_the_data_dir_is_refused(tmp_path: Path) -> None:
    registry_db = tmp_path / "elsewhere" / "reg.db"
    registry_db.parent.mkdir()
    settings = Settings(data_dir=tmp_path / "data", registry_url=f"sqlite:///{registry_db}", _env_file=None)  # type: ignore[call-arg]
    reg = Registry.open(settings)
    try:
        with pytest.raises(InvalidURL):
            reg.add("x", f"sqlite:///{registry_db}", registered_by="t")
        assert reg.list() == []
    finally:
        reg.close()


def test_files_in_the_data_dir_are_refused_but_samples_are_not(registry: Registry, settings: Settings) -> None:
    script = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
    inside = make_sqlite(settings.data_dir / "cache.db", script)
    (settings.data_dir / "models").mkdir()
    nested = make_sqlite(settings.data_dir / "models" / "x.sqlite", script)
    for url in (inside, nested):
        with pytest.raises(InvalidURL) as info:
            registry.add("x", url, registered_by="t")
        assert "data folder" in user_message(info.value)
    settings.samples_dir.mkdir()
    sample = make_sqlite(settings.samples_dir / "sales_db.sqlite", script)
    assert registry.add("sales", sample, registered_by="t").name == "sales"


@pytest.mark.parametrize(
    "content", [b"", b"not a database at all", b"SQLite format 2\x00" + b"\x00" * 100, b"SQLite format 3"]
)
def test_files_that_are_not_sqlite_are_refused(registry: Registry, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "file.db"
    path.write_bytes(content)
    with pytest.raises(InvalidURL) as info:
        registry.add("x", f"sqlite:///{path}", registered_by="t")
    assert "not an SQLite database" in user_message(info.value)
    assert path.read_bytes() == content
    assert registry.list() == []


def test_secret_key_file_is_refused(registry: Registry, settings: Settings) -> None:
    with pytest.raises(InvalidURL):
        registry.add("x", f"sqlite:///{settings.secret_key_file}", registered_by="t")


# --- allowed hosts ----------------------------------------------------------------------------


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None, **values)  # type: ignore[call-arg,arg-type]


def test_hosts_outside_the_allowlist_are_refused(tmp_path: Path, pg_url: str, sqlite_url: str) -> None:
    reg = Registry.open(_settings(tmp_path, allowed_db_hosts="10.0.0.0/8, db.internal.invalid"))
    try:
        with pytest.raises(InvalidURL) as info:
            reg.add("pg", pg_url, registered_by="t")
        assert "CHAT2SQL_ALLOWED_DB_HOSTS" in user_message(info.value)
        with pytest.raises(InvalidURL):
            reg.add("pg", pg_url.replace("127.0.0.1", "localhost"), registered_by="t")
        with pytest.raises(InvalidURL):  # does not resolve at all
            reg.add("pg", pg_url.replace("127.0.0.1", "no-such-host.invalid"), registered_by="t")
        reg.add("file", sqlite_url, registered_by="t")  # a file has no host
        assert reg.names() == ("file",)
    finally:
        reg.close()


def test_hosts_inside_the_allowlist_are_accepted(tmp_path: Path, pg_url: str) -> None:
    reg = Registry.open(_settings(tmp_path, allowed_db_hosts="127.0.0.1/32"))
    try:
        assert reg.add("pg", pg_url, registered_by="t").name == "pg"
    finally:
        reg.close()


def test_allowlist_checks_every_address() -> None:
    table = {
        "db.internal": ["10.1.2.3"],
        "split.example": ["10.1.2.3", "203.0.113.9"],
        "v6.example": ["fd00::5"],
        "other.example": ["192.0.2.1"],
    }

    def resolve(host: str, _port: int | None) -> Iterable[str]:
        return table.get(host, [])

    allow = HostAllowlist.parse(["10.0.0.0/8", "fd00::/8", "other.example"])
    assert allow.allows("db.internal", 5432, resolve=resolve)
    assert allow.allows("v6.example", 5432, resolve=resolve)
    assert allow.allows("other.example", 5432, resolve=resolve)  # allowed by name: its addresses
    assert not allow.allows("split.example", 5432, resolve=resolve)  # one address outside
    assert not allow.allows("unknown.example", 5432, resolve=resolve)
    assert HostAllowlist.parse(["127.0.0.1/32"]).allows("127.0.0.1", 5432)


@pytest.mark.parametrize("value", ["10.0.0.0/33", "a b", "db;rm"])
def test_bad_allowlist_is_refused_at_start_up(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValidationError):
        _settings(tmp_path, allowed_db_hosts=value)


# --- privileged accounts ------------------------------------------------------------------------


def _pg_in(name: str) -> psycopg.Connection:
    """An admin connection to database ``name``."""
    return psycopg.connect(
        host=str(PG_ADMIN["host"]),
        port=int(str(PG_ADMIN["port"])),
        user=str(PG_ADMIN["user"]),
        dbname=name,
        autocommit=True,
    )


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A sample database: its name (the admin URL is postgres@, the reader's c2s_reader@)."""
    name = f"c2s_priv_{uuid.uuid4().hex[:8]}"
    pg_create_database(name, "CREATE TABLE orders (id INT PRIMARY KEY, note TEXT); INSERT INTO orders VALUES (1, 'a')")
    pg_reader_url(name)
    yield name
    pg_drop_database(name)


@pytest.fixture
def my_db() -> Iterator[str]:
    name = f"c2s_priv_{uuid.uuid4().hex[:8]}"
    my_create_database(name, "CREATE TABLE orders (id INT PRIMARY KEY, note TEXT)")
    yield name
    my_drop_database(name)


def test_postgres_superuser_needs_allow_privileged(registry: Registry, pg_db: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
    with pytest.raises(PrivilegedAccount) as info:
        registry.add("pg", url, registered_by="t")
    message = user_message(info.value)
    assert "superuser" in message and "pg_read_server_files" in message and "--allow-privileged" in message
    assert registry.list() == []
    entry = registry.add("pg", url, registered_by="t", allow_privileged=True)
    assert entry.account is not None and entry.account.privileged and entry.account.allowed_privileged
    assert entry.account.superuser and "pg_write_server_files" in entry.account.server_files
    assert any("INSERT" in w and "orders" in w for w in entry.account.write_grants)
    assert entry.account.owned_tables == ("public.orders",)
    _, changed = registry.refresh("pg")  # re-checked, still allowed
    assert not changed


def test_postgres_reader_is_not_privileged_but_writes_are_reported(registry: Registry, pg_db: str) -> None:
    reader = f"postgresql://c2s_reader@127.0.0.1:5432/{pg_db}"
    entry = registry.add("pg", reader, registered_by="t")
    assert entry.account is not None and not entry.account.privileged and entry.account.findings() == []
    role = f"c2s_writer_{uuid.uuid4().hex[:6]}"
    with pg_admin() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f'GRANT CONNECT ON DATABASE "{pg_db}" TO {role}')
    try:
        with _pg_in(pg_db) as conn:
            conn.execute(f"GRANT SELECT, INSERT, UPDATE ON orders TO {role}")
        writer = registry.add("pgw", f"postgresql://{role}@127.0.0.1:5432/{pg_db}", registered_by="t")
        assert writer.account is not None and not writer.account.privileged
        assert writer.account.write_grants == ("INSERT, UPDATE on public.orders",)
        assert any("write privileges" in f for f in writer.account.findings())
    finally:
        with _pg_in(pg_db) as conn:
            conn.execute(f"DROP OWNED BY {role}")
        with pg_admin() as admin:
            admin.execute(f'REVOKE ALL ON DATABASE "{pg_db}" FROM {role}')
            admin.execute(f"DROP ROLE {role}")


def test_refresh_rechecks_the_account(registry: Registry, pg_db: str) -> None:
    role = f"c2s_promoted_{uuid.uuid4().hex[:6]}"
    with pg_admin() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f'GRANT CONNECT ON DATABASE "{pg_db}" TO {role}')
    try:
        registry.add("pg", f"postgresql://{role}@127.0.0.1:5432/{pg_db}", registered_by="t")
        with pg_admin() as admin:
            admin.execute(f"GRANT pg_read_server_files TO {role}")
        with pytest.raises(PrivilegedAccount) as info:
            registry.refresh("pg")
        assert "pg_read_server_files" in user_message(info.value)
        account = registry.get("pg").account
        assert account is not None and account.server_files == ("pg_read_server_files",)
    finally:
        with _pg_in(pg_db) as conn:
            conn.execute(f"DROP OWNED BY {role}")
        with pg_admin() as admin:
            admin.execute(f'REVOKE ALL ON DATABASE "{pg_db}" FROM {role}')
            admin.execute(f"DROP ROLE {role}")


def test_mariadb_root_needs_allow_privileged(registry: Registry, my_db: str, my_url: str) -> None:
    url = f"mysql://root@127.0.0.1:3306/{my_db}"
    with pytest.raises(PrivilegedAccount) as info:
        registry.add("maria", url, registered_by="t")
    assert "FILE" in user_message(info.value) and "superuser" in user_message(info.value)
    assert registry.list() == []
    entry = registry.add("maria", url, registered_by="t", allow_privileged=True)
    assert entry.account is not None and entry.account.privileged
    reader = registry.add("reader", my_url, registered_by="t")
    assert reader.account is not None and not reader.account.privileged and reader.account.findings() == []


def test_mariadb_file_privilege_is_refused(registry: Registry, my_db: str) -> None:
    user, password = f"c2s_file_{uuid.uuid4().hex[:6]}", "File-pw_1"
    with my_admin() as admin, admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT FILE ON *.* TO '{user}'@'127.0.0.1'")
        cur.execute(f"GRANT SELECT ON `{my_db}`.* TO '{user}'@'127.0.0.1'")
    try:
        with pytest.raises(PrivilegedAccount) as info:
            registry.add("maria", f"mysql://{user}:{password}@127.0.0.1:3306/{my_db}", registered_by="t")
        message = user_message(info.value)
        assert "FILE" in message and password not in message
    finally:
        with my_admin() as admin, admin.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'127.0.0.1'")


def test_mysql_grants_are_parsed() -> None:
    report = mysql_account_from_grants(
        "bob@%",
        [
            "GRANT USAGE ON *.* TO `bob`@`%` IDENTIFIED BY PASSWORD '*ABC'",
            "GRANT SELECT, INSERT, UPDATE (`note`, `id`) ON `shop`.* TO `bob`@`%`",
            "GRANT SELECT ON `shop`.`orders` TO `bob`@`%` WITH GRANT OPTION",
            "GRANT `analyst` TO `bob`@`%`",
        ],
    )
    assert not report.privileged
    assert report.write_grants == ("INSERT, UPDATE (`NOTE`, `ID`) ON `shop`.*",)
    assert report.other_privileges == ("GRANT OPTION ON `shop`.`orders`",)
    assert mysql_account_from_grants("r", ["GRANT SUPER ON *.* TO `r`@`h`"]).superuser
    assert mysql_account_from_grants("r", ["GRANT FILE ON *.* TO `r`@`h`"]).server_files == ("FILE",)


def test_cli_allow_privileged_and_show(tmp_path: Path, pg_db: str) -> None:
    cli = Cli(tmp_path / "data")
    url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
    refused = cli("add", "pg", url)
    assert refused.returncode == 1 and "--allow-privileged" in refused.stderr and "superuser" in refused.stderr
    assert json.loads(cli("list", "--json").stdout) == []
    added = cli("add", "pg", url, "--allow-privileged")
    assert added.returncode == 0, added.stderr
    assert "superuser" in added.stdout
    show = cli("show", "pg")
    assert "-- account: postgres (registered with --allow-privileged)" in show.stdout
    assert "superuser" in show.stdout and "pg_execute_server_program" in show.stdout
    assert "-- allowed extra functions: none" in show.stdout
    data = json.loads(cli("show", "pg", "--json").stdout)
    assert data["account"]["privileged"] is True and data["account"]["superuser"] is True
    assert "superuser" in data["account"]["findings"] and "CREATE TABLE" in data["schema"]
    reader = cli("add", "rd", f"postgresql://c2s_reader@127.0.0.1:5432/{pg_db}")
    assert reader.returncode == 0, reader.stderr
    assert "read-only" in cli("show", "rd").stdout


# --- allowed functions ---------------------------------------------------------------------------


def test_allowed_functions_are_validated_and_stored(registry: Registry, sqlite_url: str) -> None:
    registry.add("hr", sqlite_url, registered_by="t")
    entry = registry.set_allowed_functions("hr", ["Date_Trunc", "analytics.score", "date_trunc"])
    assert entry.allowed_functions == ("analytics.score", "date_trunc")
    assert registry.get("hr").allowed_functions == ("analytics.score", "date_trunc")
    assert registry.get("hr").to_json()["allowed_functions"] == ["analytics.score", "date_trunc"]
    for bad in ("", "1abc", "a.b.c", "f()", "drop table", "x;y", "a" * 64):
        with pytest.raises(InvalidFunctionName):
            registry.set_allowed_functions("hr", [bad])
    assert registry.get("hr").allowed_functions == ("analytics.score", "date_trunc")
    with pytest.raises(UnknownDatabase):
        registry.set_allowed_functions("nope", ["f"])


def test_cli_functions(tmp_path: Path, sqlite_url: str) -> None:
    cli = Cli(tmp_path / "data")
    assert cli("add", "hr", sqlite_url).returncode == 0
    proc = cli("functions", "hr", "--allow", "date_trunc", "Public.Score", "--disallow", "nothing")
    assert proc.returncode == 0, proc.stderr
    assert "date_trunc, public.score" in proc.stdout
    proc = cli("functions", "hr", "--disallow", "date_trunc", "--json")
    assert json.loads(proc.stdout) == {"name": "hr", "allowed_functions": ["public.score"]}
    assert "-- allowed extra functions: public.score" in cli("show", "hr").stdout
    bad = cli("functions", "hr", "--allow", "f()")
    assert bad.returncode == 1 and "is not a function name" in bad.stderr
    assert cli("functions", "nope").returncode == 1


@pytest.mark.asyncio
async def test_chat_admin_functions_and_allow_privileged(settings: Settings, sqlite_url: str, pg_db: str) -> None:
    bot: Assistant = make_assistant(settings, ScriptedClient(["SELECT 1"]))
    try:
        assert "Registered `hr`" in (await bot.handle(f"admin register hr {sqlite_url} People", ADMIN)).text
        reply = await bot.handle("admin functions hr allow date_trunc Analytics.Score", ADMIN)
        assert reply.kind == "text" and "`analytics.score`, `date_trunc`" in reply.text
        reply = await bot.handle("admin functions hr disallow date_trunc", ADMIN)
        assert "`analytics.score`" in reply.text and "date_trunc" not in reply.text
        assert "no extra SQL functions" not in (await bot.handle("admin functions hr", ADMIN)).text
        bad = await bot.handle("admin functions hr allow f()", ADMIN)
        assert bad.kind == "error" and "is not a function name" in bad.text
        unknown = await bot.handle("admin functions nope allow f", ADMIN)
        assert unknown.kind == "error" and "No database named 'nope'" in unknown.text
        usage = await bot.handle("admin functions hr permit f", ADMIN)
        assert usage.kind == "error" and "admin functions NAME" in usage.text
        denied = await bot.handle("admin functions hr allow evil", ALICE)
        assert denied.kind == "error" and "only chat2sql admins" in denied.text
        assert bot.registry.get("hr").allowed_functions == ("analytics.score",)

        url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
        refused = await bot.handle(f"admin register pg {url} warehouse", ADMIN)
        assert refused.kind == "error" and "--allow-privileged" in refused.text and "superuser" in refused.text
        accepted = await bot.handle(f"admin register pg {url} the warehouse --allow-privileged", ADMIN)
        assert accepted.kind == "text" and "Registered `pg`" in accepted.text and "⚠️" in accepted.text
        assert bot.registry.get("pg").description == "the warehouse"
        first = await bot.handle(f"admin register pg2 --allow-privileged {url}", ADMIN)
        assert first.kind == "text" and "Registered `pg2`" in first.text
        reader = await bot.handle(f"admin register rd postgresql://c2s_reader@127.0.0.1:5432/{pg_db}", ADMIN)
        assert reader.kind == "text" and "read-only" in reader.text
    finally:
        await bot.close()


# --- a rogue MySQL server ---------------------------------------------------------------------

CANARY = "c2s-canary-7f3a91"
_OK = b"\x00\x00\x00\x00\x00\x00\x00"  # OK packet: 0 rows, no insert id, no status flags, 0 warnings


class RogueMySQL:
    """Speaks just enough MySQL: a greeting, OK to any login, and to every query a
    LOAD DATA LOCAL request (0xFB + file name). Records every byte clients send."""

    def __init__(self, filename: str) -> None:
        self.filename = filename.encode()
        self.received = bytearray()
        self.queries = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        caps = (
            CLIENT.LONG_PASSWORD | CLIENT.CONNECT_WITH_DB | CLIENT.LOCAL_FILES | CLIENT.PROTOCOL_41
            | CLIENT.TRANSACTIONS | CLIENT.SECURE_CONNECTION | CLIENT.MULTI_RESULTS | CLIENT.PLUGIN_AUTH
        )  # fmt: skip
        salt = b"abcdefghijklmnopqrst"
        greeting = (
            b"\x0a5.7.99-rogue\x00"
            + struct.pack("<I", 7)
            + salt[:8]
            + b"\x00"
            + struct.pack("<H", caps & 0xFFFF)
            + b"\x21"
            + struct.pack("<H", 0)  # autocommit off, as PyMySQL wants it: no SET AUTOCOMMIT first
            + struct.pack("<H", caps >> 16)
            + bytes([21])
            + b"\x00" * 10
            + salt[8:]
            + b"\x00"
            + b"mysql_native_password\x00"
        )
        self._send(conn, 0, greeting)
        if self._read(conn) is None:  # the login
            return
        self._send(conn, 2, _OK)
        sending_file = False
        while not self._stop.is_set():
            packet = self._read(conn)
            if packet is None:
                return
            seq, payload = packet
            if sending_file and seq != 0:  # file content, then an empty packet: answer OK
                if payload == b"":
                    sending_file = False
                    self._send(conn, seq + 1, _OK)
                continue
            sending_file = False
            if payload.upper().startswith(b"\x03SET NAMES"):  # the driver's own set-up
                self._send(conn, 1, _OK)
            elif payload[:1] == b"\x03":  # COM_QUERY: ask for the file
                self.queries += 1
                sending_file = True
                self._send(conn, 1, b"\xfb" + self.filename)
            elif payload[:1] == b"\x01":  # COM_QUIT
                return

    def _send(self, conn: socket.socket, seq: int, payload: bytes) -> None:
        conn.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)

    def _read(self, conn: socket.socket) -> tuple[int, bytes] | None:
        try:
            header = self._exactly(conn, 4)
            payload = self._exactly(conn, int.from_bytes(header[:3], "little"))
        except (TimeoutError, ConnectionError):
            return None
        self.received += header + payload
        return header[3], payload

    @staticmethod
    def _exactly(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data


@pytest.fixture
def rogue(tmp_path: Path) -> Iterator[RogueMySQL]:
    secret_file = tmp_path / "environ"
    secret_file.write_text(f"AWS_SECRET={CANARY}\n")
    server = RogueMySQL(str(secret_file))
    yield server
    server.close()


def test_the_rogue_server_would_get_the_file_from_a_careless_client(rogue: RogueMySQL) -> None:
    """The fake server works: a client with local_infile on sends the file (so the next test can fail)."""
    conn = pymysql.connect(host="127.0.0.1", port=rogue.port, user="u", password="p", local_infile=True)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()
    assert rogue.queries >= 1 and CANARY.encode() in bytes(rogue.received)


def test_registration_sends_a_rogue_server_no_file(registry: Registry, rogue: RogueMySQL) -> None:
    url = f"mysql://u:pw@127.0.0.1:{rogue.port}/shop"
    with pytest.raises((ConnectionFailed, InvalidURL, PrivilegedAccount)):
        registry.add("rogue", url, registered_by="t")
    assert rogue.queries >= 1  # it asked
    assert CANARY.encode() not in bytes(rogue.received)  # and got nothing
    assert registry.list() == []
    # the raw engine the preview uses, too
    rogue.received.clear()
    engine = readonly_engine(url, statement_timeout_s=2)
    try:
        with pytest.raises((RuntimeError, SQLAlchemyError)), engine.connect():
            pass
    finally:
        engine.dispose()
    assert rogue.queries >= 2 and CANARY.encode() not in bytes(rogue.received)


def test_sqlite_registration_reads_only_the_header(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "real.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER)")
    before = path.read_bytes()
    registry.add("real", f"sqlite:///{path}", registered_by="t")
    assert path.read_bytes() == before
