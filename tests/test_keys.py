"""API keys on the registry database: embedded SQLite and the PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from chat2sql.db import MIGRATIONS_DIR, Base, upgrade
from chat2sql.settings import Settings
from inference.keys import (
    DuplicateKeyName,
    InvalidKeyName,
    InvalidTier,
    KeyInfo,
    KeyStore,
    KeyStoreError,
    UnknownKeyName,
    keys_main,
)


@pytest.fixture
def store(registry_settings: Settings) -> Iterator[KeyStore]:
    opened = KeyStore.open(registry_settings)
    yield opened
    opened.close()


def _rows(settings: Settings) -> list[dict[str, object]]:
    engine = create_engine(settings.effective_registry_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM api_keys ORDER BY name"))]
    engine.dispose()
    return rows


def test_create_authenticate_revoke(store: KeyStore) -> None:
    key = store.create("reporting-bot", "premium")
    assert key.startswith("c2s_") and len(key) == 4 + 43
    info = store.authenticate(key)
    assert info is not None
    assert (info.name, info.tier, info.prefix, info.revoked) == ("reporting-bot", "premium", key[:8], False)
    assert info.created_at.tzinfo is not None
    assert abs(info.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    revoked = store.revoke("reporting-bot")
    assert revoked.revoked and revoked.revoked_at is not None
    assert store.authenticate(key) is None
    again = store.revoke("reporting-bot")  # idempotent: the first revocation time stays
    assert again.revoked_at == revoked.revoked_at
    assert [k.name for k in store.list()] == ["reporting-bot"]


def test_keys_are_distinct_and_independent(store: KeyStore) -> None:
    one = store.create("one", "standard")
    two = store.create("two", "internal")
    assert one != two
    store.revoke("one")
    assert store.authenticate(one) is None
    info = store.authenticate(two)
    assert info is not None and info.name == "two" and info.tier == "internal"


@pytest.mark.parametrize(
    "presented",
    ["", "c2s_", "c2s_" + "A" * 43, "not-a-key", "c2s_ünïcode", "c2s_" + "x" * 10_000],
)
def test_wrong_keys_are_refused(store: KeyStore, presented: str) -> None:
    store.create("svc", "standard")
    assert store.authenticate(presented) is None


def test_a_near_miss_is_refused(store: KeyStore) -> None:
    key = store.create("svc", "standard")
    flipped = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert store.authenticate(flipped) is None
    assert store.authenticate(key + " ") is None and store.authenticate(key.upper()) is None
    assert store.authenticate(key) is not None


def test_the_database_holds_no_plaintext(store: KeyStore, registry_settings: Settings) -> None:
    key = store.create("svc", "standard")
    [row] = _rows(registry_settings)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == key[:8]
    secret_part = key.removeprefix("c2s_")
    for value in row.values():
        assert secret_part[4:] not in str(value)  # beyond the 4 characters the prefix shows


def test_list_shows_no_secrets(store: KeyStore) -> None:
    key = store.create("svc", "standard")
    [info] = store.list()
    assert isinstance(info, KeyInfo)
    assert set(info.to_json()) == {"name", "tier", "prefix", "created_at", "revoked", "revoked_at", "databases"}
    assert key not in repr(info) and key[8:] not in json.dumps(info.to_json())


def test_a_key_from_another_process_works_at_once(registry_settings: Settings, store: KeyStore) -> None:
    assert store.authenticate("c2s_x") is None  # the first store has been used already
    other = KeyStore.open(registry_settings)
    key = other.create("new-worker", "standard")
    assert store.authenticate(key) is not None
    other.revoke("new-worker")
    other.close()
    assert store.authenticate(key) is None


@pytest.mark.parametrize("name", ["", "Sales", "1db", "has space", "a" * 64, "drop;table", "ünï"])
def test_invalid_names_change_nothing(store: KeyStore, name: str) -> None:
    with pytest.raises(InvalidKeyName) as info:
        store.create(name, "standard")
    assert "not a valid key name" in info.value.message
    assert store.list() == []


@pytest.mark.parametrize("tier", ["", "gold", "Standard", "standard "])
def test_invalid_tiers_change_nothing(store: KeyStore, tier: str) -> None:
    with pytest.raises(InvalidTier) as info:
        store.create("svc", tier)
    assert "standard, premium, internal" in info.value.message
    assert store.list() == []


def test_duplicate_and_unknown_names_change_nothing(store: KeyStore, registry_settings: Settings) -> None:
    key = store.create("svc", "standard")
    store.revoke("svc")
    before = _rows(registry_settings)
    with pytest.raises(DuplicateKeyName) as dup:
        store.create("svc", "premium")  # a revoked key keeps its name
    assert "'svc' already exists" in dup.value.message
    with pytest.raises(UnknownKeyName) as unknown:
        store.revoke("nope")
    assert unknown.value.message == "No API key named 'nope' exists."
    assert _rows(registry_settings) == before
    assert store.authenticate(key) is None


def test_every_error_has_a_message() -> None:
    for err in (InvalidKeyName("X"), InvalidTier("gold"), DuplicateKeyName("a"), UnknownKeyName("b")):
        assert isinstance(err, KeyStoreError) and err.message.endswith(".")


# --- command line -------------------------------------------------------------------------


def test_cli_create_list_revoke(registry_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys_main(["create", "--tier", "premium", "--name", "bi-tool"], settings=registry_settings) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert out == key + "\n" and key.startswith("c2s_") and err == ""  # only the key, on stdout

    assert keys_main(["list", "--json"], settings=registry_settings) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["name"] == "bi-tool" and entry["tier"] == "premium" and entry["prefix"] == key[:8]
    assert entry["revoked"] is False and entry["revoked_at"] is None and "created_at" in entry

    assert keys_main(["list"], settings=registry_settings) == 0
    out = capsys.readouterr().out
    assert "bi-tool\tpremium" in out and "active" in out and key[8:] not in out

    assert keys_main(["revoke", "bi-tool"], settings=registry_settings) == 0
    assert capsys.readouterr().out == "revoked bi-tool\n"
    assert keys_main(["list", "--json"], settings=registry_settings) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked"] is True

    store = KeyStore.open(registry_settings)
    assert store.authenticate(key) is None
    store.close()


def test_a_key_limited_to_some_databases(registry_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["create", "--tier", "standard", "--name", "bi", "--databases", "sales_db, hr_db,sales_db"]
    assert keys_main(argv, settings=registry_settings) == 0
    key = capsys.readouterr().out.strip()
    assert keys_main(["create", "--tier", "standard", "--name", "everything"], settings=registry_settings) == 0
    capsys.readouterr()
    assert keys_main(["list", "--json"], settings=registry_settings) == 0
    listed = {k["name"]: k["databases"] for k in json.loads(capsys.readouterr().out)}
    assert listed == {"bi": ["hr_db", "sales_db"], "everything": None}
    assert keys_main(["list"], settings=registry_settings) == 0
    out = capsys.readouterr().out
    assert "\thr_db,sales_db" in out and "\tall databases" in out
    store = KeyStore.open(registry_settings)
    info = store.authenticate(key)
    store.close()
    assert info is not None and info.may_use("hr_db") and not info.may_use("ops_db")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "--tier", "gold", "--name", "svc"], "error: 'gold' is not a tier"),
        (["create", "--tier", "standard", "--name", "Bad Name"], "error: 'Bad Name' is not a valid key name"),
        (["create", "--tier", "standard", "--name", "taken"], "error: An API key named 'taken' already"),
        (["revoke", "nope"], "error: No API key named 'nope' exists."),
        (
            ["create", "--tier", "standard", "--name", "svc", "--databases", "hr,Bad DB"],
            "error: 'Bad DB' is not a valid database name for --databases",
        ),
        (["create", "--tier", "standard", "--name", "svc", "--databases", ""], "error: '' is not a valid database"),
    ],
)
def test_cli_errors_are_one_line_and_change_nothing(
    registry_settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert keys_main(["create", "--tier", "standard", "--name", "taken"], settings=registry_settings) == 0
    capsys.readouterr()
    before = _rows(registry_settings)
    assert keys_main(argv, settings=registry_settings) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message) and err.count("\n") == 1
    assert _rows(registry_settings) == before


@pytest.mark.parametrize(
    "argv", [[], ["create", "--name", "svc"], ["create", "--tier", "standard"], ["frobnicate"], ["revoke"]]
)
def test_cli_usage_errors_exit_2(settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert keys_main(argv, settings=settings) == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage:" in err
    assert not settings.data_dir.exists()  # nothing was opened, let alone written


def test_cli_unreachable_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        data_dir=tmp_path,
        registry_url="postgresql+psycopg://bob:Hunter2Secret@127.0.0.1:1/registry?connect_timeout=2",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert keys_main(["list"], settings=settings) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: the registry database cannot be used")
    assert err.count("\n") == 1 and "Hunter2Secret" not in err


# --- migrations ---------------------------------------------------------------------------


def _alembic_config(connection: object) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def test_a_0001_registry_upgrades_and_keeps_its_rows(registry_settings: Settings) -> None:
    if registry_settings.uses_embedded_registry:
        registry_settings.data_dir.mkdir(parents=True)
    engine = create_engine(registry_settings.effective_registry_url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
    assert "api_keys" not in inspect(engine).get_table_names()
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registered_databases (name, url_encrypted, url_masked, dialect, description,"
                " registered_by, registered_at, schema_json, schema_hash, refreshed_at)"
                " VALUES ('hr', 'fernet:x', 'sqlite:///hr.db', 'sqlite', '', 't', :now, '{}', 'h', :now)"
            ),
            {"now": now},
        )
    engine.dispose()

    store = KeyStore.open(registry_settings)  # opening runs the remaining migrations
    key = store.create("svc", "standard")
    assert store.authenticate(key) is not None
    store.close()

    engine = create_engine(registry_settings.effective_registry_url)
    with engine.connect() as conn:
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        assert conn.execute(text("SELECT name, url_encrypted FROM registered_databases")).all() == [("hr", "fernet:x")]
    assert {"registered_databases", "api_keys"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_match_the_models_including_api_keys(tmp_path: Path) -> None:
    """Autogenerate finds nothing to do: the migration chain and the ORM models agree."""
    import bot.slack.threads
    import bot.tables
    import bot.teams.store
    import schemas.glossary
    import schemas.values  # every table mapped, whichever tests ran before

    assert schemas.glossary and schemas.values and bot.tables and bot.teams.store and bot.slack.threads
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert "api_keys" in Base.metadata.tables
    insp = inspect(engine)
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("api_keys")}
    assert {("name",), ("key_hash",)} <= uniques
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    engine.dispose()


def test_0002_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0001")
    assert "api_keys" not in inspect(engine).get_table_names()
    assert "registered_databases" in inspect(engine).get_table_names()
    upgrade(engine)
    assert "api_keys" in inspect(engine).get_table_names()
    engine.dispose()
