"""The registry on a real SQL store: SQLite (embedded) and the PostgreSQL server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, inspect, text

from chat2sql.db import MIGRATIONS_DIR, Base, upgrade
from chat2sql.errors import (
    ConnectionFailed,
    DuplicateDatabase,
    InvalidName,
    InvalidURL,
    MissingSecretKey,
    UnknownDatabase,
    UnsupportedDialect,
    WrongSecretKey,
)
from chat2sql.messages import user_message
from chat2sql.settings import Settings
from schemas.registry import Registry
from tests.support.databases import with_password


def _rows(settings: Settings) -> list[tuple[object, ...]]:
    engine = create_engine(settings.effective_registry_url)
    with engine.connect() as conn:
        rows = list(conn.execute(text("SELECT name, url_encrypted, url_masked FROM registered_databases")))
    engine.dispose()
    return [tuple(r) for r in rows]


def test_add_list_show_refresh_remove(registry: Registry, sqlite_url: str) -> None:
    entry = registry.add("hr", sqlite_url, description="people", registered_by="slack:U1")
    assert entry.dialect == "sqlite" and len(entry.schema.tables) == 5
    assert [e.name for e in registry.list()] == ["hr"]
    got = registry.get("hr")
    assert got.schema_hash == entry.schema_hash and got.registered_by == "slack:U1"
    assert got.registered_at.tzinfo is not None
    _, changed = registry.refresh("hr")
    assert not changed
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute("CREATE TABLE projects (id INTEGER PRIMARY KEY, title TEXT)")
    refreshed, changed = registry.refresh("hr")
    assert changed and refreshed.schema_hash != entry.schema_hash
    assert any(t.name == "projects" for t in refreshed.schema.tables)
    registry.remove("hr")
    assert registry.list() == []


@pytest.mark.parametrize("name", ["", "Sales", "1db", "has space", "a" * 64, "drop;table", "ünï"])
def test_invalid_names_change_nothing(registry: Registry, sqlite_url: str, name: str) -> None:
    with pytest.raises(InvalidName):
        registry.add(name, sqlite_url, registered_by="t")
    assert registry.list() == []


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("", InvalidURL),
        ("not a url", InvalidURL),
        ("sqlite://", InvalidURL),
        ("sqlite:///:memory:", InvalidURL),
        ("postgresql://u:pw@/nodb", InvalidURL),
        ("postgresql://u:pw@host", InvalidURL),
        ("oracle://u:pw@host/db", UnsupportedDialect),
        ("sqlite:////no/such/file.db", InvalidURL),
    ],
)
def test_bad_urls_change_nothing(registry: Registry, url: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        registry.add("x", url, registered_by="t")
    message = user_message(info.value)
    assert "pw" not in message
    assert registry.list() == []


def test_sqlite_registration_never_creates_a_file(registry: Registry, tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(InvalidURL):
        registry.add("x", f"sqlite:///{missing}", registered_by="t")
    assert not missing.exists()


def test_unreachable_database_masks_password(registry: Registry) -> None:
    with pytest.raises(ConnectionFailed) as info:
        registry.add("x", "postgresql://bob:Hunter2Secret@127.0.0.1:1/db", registered_by="t")
    message = user_message(info.value)
    assert "Hunter2Secret" not in message and "x" in message
    assert registry.list() == []


def test_duplicate_and_unknown(registry: Registry, sqlite_url: str) -> None:
    registry.add("hr", sqlite_url, registered_by="t")
    with pytest.raises(DuplicateDatabase):
        registry.add("hr", sqlite_url, registered_by="t")
    with pytest.raises(UnknownDatabase) as info:
        registry.get("nope")
    assert "hr" in user_message(info.value)
    for op in (registry.refresh, registry.remove, registry.connection_url):
        with pytest.raises(UnknownDatabase):
            op("nope")
    assert [e.name for e in registry.list()] == ["hr"]


def test_urls_are_encrypted_at_rest_and_masked(settings: Settings, pg_url: str) -> None:
    password_url = with_password(pg_url, "TopSecret99")  # trust auth ignores it
    reg = Registry.open(settings)
    entry = reg.add("pg", password_url, registered_by="t")
    assert "TopSecret99" not in entry.url_masked and "***" in entry.url_masked
    assert "TopSecret99" not in str(entry.to_json())
    assert reg.connection_url("pg") == password_url
    reg.close()
    [(name, encrypted, masked)] = _rows(settings)
    assert name == "pg" and str(encrypted).startswith("fernet:")
    assert "TopSecret99" not in str(encrypted) and "TopSecret99" not in str(masked)
    assert (settings.data_dir / "secret.key").stat().st_mode & 0o077 == 0


def test_wrong_key_is_reported_not_crashed(settings: Settings, pg_url: str, tmp_path: Path) -> None:
    reg = Registry.open(settings)
    reg.add("pg", with_password(pg_url, "pw"), registered_by="t")
    reg.close()
    other = Settings(data_dir=settings.data_dir, secret_key=Fernet.generate_key().decode(), _env_file=None)  # type: ignore[call-arg]
    reg = Registry.open(other)
    with pytest.raises(WrongSecretKey):
        reg.connection_url("pg")
    reg.close()


def test_postgres_registry_refuses_passwords_without_key(
    pg_registry_settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    reg = Registry.open(pg_registry_settings)
    reg.add("local", sqlite_url, registered_by="t")  # no credentials: allowed without a key
    with pytest.raises(MissingSecretKey):
        reg.add("pg", with_password(pg_url, "pw"), registered_by="t")
    assert [e.name for e in reg.list()] == ["local"]
    assert not (pg_registry_settings.data_dir / "secret.key").exists()
    reg.close()


def test_postgres_registry_with_key(pg_registry_settings: Settings, pg_url: str, my_url: str) -> None:
    settings = Settings(
        data_dir=pg_registry_settings.data_dir,
        registry_url=pg_registry_settings.registry_url,
        secret_key=Fernet.generate_key().decode(),
        _env_file=None,  # type: ignore[call-arg]
    )
    reg = Registry.open(settings)
    reg.add("pg", with_password(pg_url, "pw"), registered_by="t")
    reg.add("maria", my_url, registered_by="t")
    assert sorted(e.dialect for e in reg.list()) == ["mysql", "postgres"]
    reg.close()
    reopened = Registry.open(settings)  # migrations run again: no-op, data kept
    assert [e.name for e in reopened.list()] == ["maria", "pg"]
    reopened.close()


def test_migrations_match_the_models(tmp_path: Path) -> None:
    """The migration chain creates exactly the tables and columns the ORM models declare."""
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    upgrade(engine)  # idempotent
    insp = inspect(engine)
    for table in Base.metadata.tables.values():
        assert {c["name"] for c in insp.get_columns(table.name)} == {c.name for c in table.columns}
    with engine.connect() as conn:
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    engine.dispose()


def test_existing_registry_survives_upgrade(tmp_path: Path, sqlite_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    first = Registry.open(settings)
    first.add("hr", sqlite_url, registered_by="t")
    first.close()
    second = Registry.open(settings)
    assert [e.name for e in second.list()] == ["hr"]
    second.close()
