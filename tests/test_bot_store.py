"""The bot's state on the registry database: embedded SQLite and the PostgreSQL server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from bot.audit import InvalidSince, audit_main, parse_since
from bot.store import (
    AuditEntry,
    AuditRecord,
    BotStore,
    InvalidRating,
    ThreadTurn,
    UnknownAuditEntry,
    Where,
)
from chat2sql.db import MIGRATIONS_DIR
from chat2sql.errors import InvalidName
from chat2sql.messages import user_message
from chat2sql.settings import Settings

START = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
SLACK_A = Where(platform="slack", workspace="T-ACME", channel="C-SALES", user_id="U-ALICE")
SLACK_A_OTHER_CHANNEL = Where(platform="slack", workspace="T-ACME", channel="C-RANDOM", user_id="U-BOB")
SLACK_B = Where(platform="slack", workspace="T-OTHER", channel="C-SALES", user_id="U-EVE")
TEAMS_SAME_ID = Where(platform="teams", workspace="T-ACME", channel="C-SALES", user_id="29:x")
WRITERS = 8


class StepClock:
    """UTC times that only move when told to."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def store_settings(registry_settings: Settings) -> Settings:
    return registry_settings


OpenStore = Callable[..., BotStore]


@pytest.fixture
def open_store(store_settings: Settings) -> Iterator[OpenStore]:
    """Opens stores on one registry; ``clock`` stamps their rows (default: a StepClock)."""
    BotStore.open(store_settings).close()  # creates and migrates the registry
    opened: list[BotStore] = []

    def factory(clock: Callable[[], dt.datetime] | None = None) -> BotStore:
        engine = create_engine(store_settings.effective_registry_url)
        store = BotStore(engine=engine, clock=clock or StepClock())
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> BotStore:
    return open_store()


def _record(where: Where = SLACK_A, **fields: object) -> AuditRecord:
    values: dict[str, object] = {
        "platform": where.platform,
        "workspace": where.workspace,
        "channel": where.channel,
        "user_id": where.user_id,
        "question": "how many customers?",
        "trace_id": uuid.uuid4().hex,
        **fields,
    }
    return AuditRecord(**values)  # type: ignore[arg-type]


def _count(settings: Settings, table: str) -> int:
    engine = create_engine(settings.effective_registry_url)
    with engine.connect() as conn:
        count = conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(count)


# --- audit ----------------------------------------------------------------------------------


def test_record_round_trips_every_field(store: BotStore) -> None:
    full = _record(
        database="shop",
        question="Wie viele Kunden in München? 🚀",
        sql="SELECT COUNT(*) FROM customers WHERE city = 'München'",
        guard_verdict="accepted",
        preview_rows=1,
        latency_ms=123.456,
        cache_hit=True,
        adapter="seed",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )
    bare = _record(question="drop everything", guard_verdict="read_only", error_kind="guard_rejected")
    first, second = store.record(full), store.record(bare)
    assert second > first
    [newest, oldest] = store.audit()
    assert oldest == AuditEntry(id=first, created_at=START, **vars(full))
    assert newest.id == second and newest.database is None and newest.sql is None
    assert newest.preview_rows is None and newest.latency_ms is None and newest.cache_hit is False
    assert newest.guard_verdict == "read_only" and newest.error_kind == "guard_rejected"
    assert oldest.created_at.tzinfo is not None and oldest.created_at.utcoffset() == dt.timedelta(0)


def test_audit_is_newest_first_with_since_and_limit(open_store: OpenStore) -> None:
    clock = StepClock()
    store = open_store(clock)
    ids = []
    for hour in range(5):
        ids.append(store.record(_record(question=f"q{hour}")))
        clock.advance(hours=1)
    assert [e.id for e in store.audit()] == ids[::-1]
    assert [e.question for e in store.audit(limit=2)] == ["q4", "q3"]
    since = START + dt.timedelta(hours=2)
    assert [e.question for e in store.audit(since=since)] == ["q4", "q3", "q2"]  # inclusive
    assert [e.question for e in store.audit(since=since, limit=1)] == ["q4"]
    assert store.audit(since=START + dt.timedelta(hours=5)) == []


def test_since_compares_instants_not_wall_clocks(store: BotStore) -> None:
    store.record(_record())  # at 09:30 UTC
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert len(store.audit(since=dt.datetime(2026, 3, 1, 10, 30, tzinfo=berlin))) == 1  # 09:30 UTC
    assert store.audit(since=dt.datetime(2026, 3, 1, 10, 31, tzinfo=berlin)) == []
    assert len(store.audit(since=dt.datetime(2026, 3, 1, 9, 30))) == 1  # naive is UTC
    assert store.audit(since=dt.datetime(2026, 3, 1, 9, 31)) == []


def test_rows_in_the_same_instant_keep_insertion_order(store: BotStore) -> None:
    ids = [store.record(_record(question=f"q{i}")) for i in range(3)]  # one frozen clock
    assert [e.id for e in store.audit()] == ids[::-1]


def test_get_one_entry_and_note_its_preview(store: BotStore) -> None:
    audit_id = store.record(_record(database="shop", sql="SELECT 1"))
    entry = store.get(audit_id)
    assert entry is not None and entry.id == audit_id and entry.sql == "SELECT 1"
    assert entry.preview_rows is None
    store.set_preview_rows(audit_id, 42)
    assert store.audit()[0].preview_rows == 42
    assert store.get(audit_id + 1) is None
    with pytest.raises(UnknownAuditEntry):
        store.set_preview_rows(audit_id + 1, 1)


def test_audit_limit_must_be_positive(store: BotStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.audit(limit=0)


def test_audit_entry_json(store: BotStore) -> None:
    store.record(_record(database="shop", latency_ms=5.0))
    [entry] = store.audit()
    payload = json.loads(json.dumps(entry.to_json()))
    assert list(payload)[:2] == ["id", "created_at"]
    assert payload["created_at"] == START.isoformat() and payload["database"] == "shop"
    assert set(payload) == {
        "id", "created_at", "platform", "workspace", "channel", "user_id", "database", "question",
        "sql", "guard_verdict", "preview_rows", "latency_ms", "cache_hit", "error_kind", "adapter",
        "trace_id", "arm", "preview_error",
    }  # fmt: skip


# --- feedback -------------------------------------------------------------------------------


def test_feedback_on_an_answer(open_store: OpenStore) -> None:
    clock = StepClock()
    store = open_store(clock)
    audit_id = store.record(_record(sql="SELECT COUNT(*) FROM customer"))
    other_id = store.record(_record())
    first = store.add_feedback(
        audit_id=audit_id, user_id="U-ALICE", rating="down", corrected_sql="SELECT COUNT(*) FROM customers"
    )
    clock.advance(minutes=1)
    second = store.add_feedback(audit_id=audit_id, user_id="U-BOB", rating="up")
    assert second > first
    got = store.feedback_for(audit_id)
    assert [(f.id, f.user_id, f.rating, f.corrected_sql) for f in got] == [
        (first, "U-ALICE", "down", "SELECT COUNT(*) FROM customers"),
        (second, "U-BOB", "up", None),
    ]
    assert got[1].created_at == START + dt.timedelta(minutes=1) and got[0].audit_id == audit_id
    assert json.loads(json.dumps(got[0].to_json()))["rating"] == "down"
    assert store.feedback_for(other_id) == []


def test_feedback_on_an_unknown_answer_is_refused(store_settings: Settings, store: BotStore) -> None:
    audit_id = store.record(_record())
    with pytest.raises(UnknownAuditEntry) as info:
        store.add_feedback(audit_id=audit_id + 1000, user_id="U-ALICE", rating="up")
    assert info.value.audit_id == audit_id + 1000
    assert user_message(info.value) == info.value.message and str(audit_id + 1000) in info.value.message
    with pytest.raises(InvalidRating) as bad:
        store.add_feedback(audit_id=audit_id, user_id="U-ALICE", rating="meh")  # type: ignore[arg-type]
    assert "'up' or 'down'" in user_message(bad.value)
    assert _count(store_settings, "feedback") == 0


# --- access ---------------------------------------------------------------------------------


def test_cli_registered_databases_are_open_everywhere(store: BotStore) -> None:
    for where in (SLACK_A, SLACK_A_OTHER_CHANNEL, SLACK_B, TEAMS_SAME_ID):
        assert store.is_allowed("warehouse", where)


def test_chat_registered_databases_stay_in_their_workspace(store: BotStore) -> None:
    store.set_origin("sales", platform="slack", workspace="T-ACME")
    assert store.is_allowed("sales", SLACK_A)
    assert store.is_allowed("sales", SLACK_A_OTHER_CHANNEL)  # the whole workspace, any channel
    assert not store.is_allowed("sales", SLACK_B)  # another workspace
    assert not store.is_allowed("sales", TEAMS_SAME_ID)  # same id on another platform
    assert store.is_allowed("warehouse", SLACK_B)  # other databases are unaffected


def test_grant_and_revoke_override_one_channel(store_settings: Settings, store: BotStore) -> None:
    store.set_origin("sales", platform="slack", workspace="T-ACME")
    store.grant("sales", SLACK_B)
    assert store.is_allowed("sales", SLACK_B)
    assert not store.is_allowed("sales", Where(platform="slack", workspace="T-OTHER", channel="C-2", user_id="U"))
    store.revoke("sales", SLACK_A)
    assert not store.is_allowed("sales", SLACK_A)
    assert store.is_allowed("sales", SLACK_A_OTHER_CHANNEL)  # only that channel
    store.grant("sales", SLACK_A)  # flips back: an update, not a second row
    assert store.is_allowed("sales", SLACK_A)
    assert _count(store_settings, "db_access") == 2
    store.revoke("warehouse", SLACK_B)  # even a CLI-registered database can be closed per channel
    assert not store.is_allowed("warehouse", SLACK_B)
    assert store.is_allowed("warehouse", SLACK_A)


def test_access_rows_record_who_changed_them(store_settings: Settings, open_store: OpenStore) -> None:
    clock = StepClock()
    store = open_store(clock)
    store.grant("sales", SLACK_A)
    clock.advance(hours=1)
    store.revoke("sales", Where(platform="slack", workspace="T-ACME", channel="C-SALES", user_id="U-BOB"))
    engine = create_engine(store_settings.effective_registry_url)
    with engine.connect() as conn:
        [(allowed, updated_by, updated_at)] = conn.execute(
            text("SELECT allowed, updated_by, updated_at FROM db_access")
        ).all()
    engine.dispose()
    if isinstance(updated_at, str):  # SQLite: naive UTC text
        updated_at = dt.datetime.fromisoformat(updated_at).replace(tzinfo=dt.UTC)
    assert not allowed and updated_by == "U-BOB"
    assert updated_at == START + dt.timedelta(hours=1)


def test_origin_can_move(store: BotStore) -> None:
    store.set_origin("sales", platform="slack", workspace="T-ACME")
    store.set_origin("sales", platform="teams", workspace="T-ACME")  # registered again elsewhere
    assert store.is_allowed("sales", TEAMS_SAME_ID) and not store.is_allowed("sales", SLACK_A)


@pytest.mark.parametrize("name", ["", "Sales", "a" * 64, "x; DROP TABLE db_access"])
def test_invalid_database_names_are_refused(store_settings: Settings, store: BotStore, name: str) -> None:
    writes: tuple[Callable[[], None], ...] = (
        lambda: store.grant(name, SLACK_A),
        lambda: store.revoke(name, SLACK_A),
        lambda: store.set_origin(name, platform="slack", workspace="T"),
        lambda: store.set_default(SLACK_A, name),
    )
    for write in writes:
        with pytest.raises(InvalidName):
            write()
    assert _count(store_settings, "db_access") == _count(store_settings, "db_origin") == 0


def test_state_is_shared_between_stores(open_store: OpenStore) -> None:
    """Replicas of the bot see each other's writes at once: nothing is cached in process."""
    first, second = open_store(), open_store()
    first.set_origin("sales", platform="slack", workspace="T-ACME")
    assert not second.is_allowed("sales", SLACK_B)
    first.grant("sales", SLACK_B)
    assert second.is_allowed("sales", SLACK_B)
    second.set_default(SLACK_B, "sales")
    assert first.default(SLACK_B) == "sales"


def test_concurrent_writers_of_one_scope_leave_one_row(store_settings: Settings, open_store: OpenStore) -> None:
    """Racing upserts: the loser of an INSERT race updates instead of failing."""
    stores = [open_store() for _ in range(WRITERS)]
    start = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def write(store: BotStore, allowed: bool) -> None:
        start.wait()
        try:
            (store.grant if allowed else store.revoke)("sales", SLACK_B)
            store.set_default(SLACK_B, "sales")
        except BaseException as exc:  # reported below: a thread's exception would vanish
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(s, i % 2 == 0)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert _count(store_settings, "db_access") == 1 and _count(store_settings, "channel_defaults") == 1


# --- defaults and forgetting ----------------------------------------------------------------


def test_channel_defaults(store: BotStore) -> None:
    assert store.default(SLACK_A) is None
    store.set_default(SLACK_A, "sales")
    assert store.default(SLACK_A) == "sales"
    assert store.default(SLACK_A_OTHER_CHANNEL) is None and store.default(SLACK_B) is None
    assert store.default(TEAMS_SAME_ID) is None
    store.set_default(SLACK_A, "warehouse")
    assert store.default(SLACK_A) == "warehouse"


def test_forget_clears_a_removed_database(store_settings: Settings, store: BotStore) -> None:
    store.set_origin("sales", platform="slack", workspace="T-ACME")
    store.set_origin("hr", platform="slack", workspace="T-ACME")
    store.revoke("sales", SLACK_A)
    store.grant("sales", SLACK_B)
    store.grant("hr", SLACK_B)
    store.set_default(SLACK_A, "sales")
    store.set_default(SLACK_B, "hr")
    audit_id = store.record(_record(database="sales"))
    store.add_feedback(audit_id=audit_id, user_id="U-ALICE", rating="up")

    store.forget("sales")
    assert store.default(SLACK_A) is None and store.default(SLACK_B) == "hr"
    assert _count(store_settings, "db_origin") == 1 and _count(store_settings, "db_access") == 1
    # A database registered again under that name (say with the CLI) starts from scratch.
    assert store.is_allowed("sales", SLACK_A) and store.is_allowed("sales", SLACK_B)
    assert store.is_allowed("hr", SLACK_B) and not store.is_allowed("hr", TEAMS_SAME_ID)
    # History stays.
    assert [e.database for e in store.audit()] == ["sales"]
    assert len(store.feedback_for(audit_id)) == 1
    store.forget("never-registered")  # nothing to do is not an error


# --- command line ---------------------------------------------------------------------------


@pytest.fixture
def history(open_store: OpenStore) -> list[int]:
    """Three answers: 10 days, 2 days and 1 hour old (real time: the CLI reads the clock)."""
    now = dt.datetime.now(dt.UTC)
    ids = []
    ages = {
        "old": dt.timedelta(days=10),
        "recent": dt.timedelta(days=2),
        "newest\twith  tabs": dt.timedelta(hours=1),
    }
    for question, age in ages.items():
        ids.append(open_store(lambda age=age: now - age).record(_record(question=question, database="shop")))
    return ids


def test_audit_cli_json_is_an_array_only(
    store_settings: Settings, history: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert audit_main(["--json"], settings=store_settings) == 0
    out, err = capsys.readouterr()
    entries = json.loads(out)
    assert isinstance(entries, list) and err == ""
    assert [e["id"] for e in entries] == history[::-1]
    assert entries[0]["question"] == "newest\twith  tabs" and entries[0]["database"] == "shop"

    assert audit_main(["--json", "--limit", "1"], settings=store_settings) == 0
    assert [e["question"] for e in json.loads(capsys.readouterr().out)] == ["newest\twith  tabs"]


@pytest.mark.parametrize(
    ("since", "questions"),
    [
        ("7d", ["newest\twith  tabs", "recent"]),
        ("3h", ["newest\twith  tabs"]),
        ("30D", ["newest\twith  tabs", "recent", "old"]),
        ("2000-01-01", ["newest\twith  tabs", "recent", "old"]),
        ("2999-01-01T00:00:00+00:00", []),
    ],
)
def test_audit_cli_since(
    store_settings: Settings,
    history: list[int],
    capsys: pytest.CaptureFixture[str],
    since: str,
    questions: list[str],
) -> None:
    assert audit_main(["--since", since, "--json"], settings=store_settings) == 0
    assert [e["question"] for e in json.loads(capsys.readouterr().out)] == questions


def test_audit_cli_table(store_settings: Settings, history: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    assert audit_main([], settings=store_settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("\tnewest with tabs") and f"#{history[2]}\t" in lines[0]
    assert "slack:T-ACME/C-SALES\tU-ALICE\tshop" in lines[0]
    assert audit_main(["--since", "2999-01-01"], settings=store_settings) == 0
    assert capsys.readouterr().out.startswith("no audit entries since 2999-01-01")


@pytest.mark.parametrize("since", ["yesterday", "7", "7w", "-1d", "2026-13-01", ""])
def test_audit_cli_bad_since(store_settings: Settings, capsys: pytest.CaptureFixture[str], since: str) -> None:
    assert audit_main([f"--since={since}", "--json"], settings=store_settings) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: '{since}' is not a start time") and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["--limit", "0"], ["--limit", "many"], ["--frobnicate"], ["extra"]])
def test_audit_cli_usage_errors_exit_2(settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert audit_main(argv, settings=settings) == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage:" in err
    assert not settings.data_dir.exists()  # nothing was opened


def test_audit_cli_unreachable_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        data_dir=tmp_path,
        registry_url="postgresql+psycopg://bob:Hunter2Secret@127.0.0.1:1/registry?connect_timeout=2",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert audit_main(["--json"], settings=settings) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: the registry database cannot be used")
    assert err.count("\n") == 1 and "Hunter2Secret" not in err


def test_parse_since() -> None:
    now = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    assert parse_since("12h", now=now) == dt.datetime(2026, 3, 10, 0, tzinfo=dt.UTC)
    assert parse_since(" 1d ", now=now) == dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
    assert parse_since("2026-03-01T08:00+02:00", now=now) == dt.datetime(2026, 3, 1, 6, tzinfo=dt.UTC)
    assert parse_since("2026-03-01T08:00Z", now=now) == dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
    with pytest.raises(InvalidSince) as info:
        parse_since("last week", now=now)
    assert "7d" in user_message(info.value)


# --- migrations -----------------------------------------------------------------------------


def _alembic_config(connection: object) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


BOT_TABLES = {"audit_log", "feedback", "db_access", "db_origin", "channel_defaults"}


def test_a_0002_registry_upgrades_and_keeps_its_rows(store_settings: Settings) -> None:
    if store_settings.uses_embedded_registry:
        store_settings.data_dir.mkdir(parents=True)
    engine = create_engine(store_settings.effective_registry_url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0002")
    assert not BOT_TABLES & set(inspect(engine).get_table_names())
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
        conn.execute(
            text(
                "INSERT INTO api_keys (name, tier, key_hash, prefix, created_at)"
                " VALUES ('svc', 'standard', :hash, 'c2s_abcd', :now)"
            ),
            {"hash": "0" * 64, "now": now},
        )
    engine.dispose()

    store = BotStore.open(store_settings)  # opening runs the remaining migrations
    store.set_origin("hr", platform="slack", workspace="T-ACME")
    assert not store.is_allowed("hr", SLACK_B)
    store.close()

    engine = create_engine(store_settings.effective_registry_url)
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        assert conn.execute(text("SELECT name, url_encrypted FROM registered_databases")).all() == [("hr", "fernet:x")]
        assert conn.execute(text("SELECT name, key_hash FROM api_keys")).all() == [("svc", "0" * 64)]
    assert set(inspect(engine).get_table_names()) >= BOT_TABLES
    engine.dispose()


def test_0003_downgrades_and_upgrades_again(store_settings: Settings) -> None:
    store = BotStore.open(store_settings)
    store.close()
    engine = create_engine(store_settings.effective_registry_url)
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0002")
    tables = set(inspect(engine).get_table_names())
    assert not BOT_TABLES & tables and {"registered_databases", "api_keys"} <= tables
    engine.dispose()
    store = BotStore.open(store_settings)
    assert store.audit() == []
    store.close()


def test_thread_turns_are_per_thread_and_replaced(store: BotStore) -> None:
    thread = dataclasses.replace(SLACK_A, thread="1710000000.000001")
    other = dataclasses.replace(SLACK_A, thread="1710000000.000002")
    assert store.last_turn(thread) is None and store.last_turn(SLACK_A) is None
    store.remember_turn(thread, ThreadTurn(database="shop", question="q1", sql="SELECT 1", audit_id=1))
    store.remember_turn(thread, ThreadTurn(database="shop", question="q2", sql="SELECT 2", audit_id=2))
    store.remember_turn(SLACK_A, ThreadTurn(database="shop", question="x", sql="SELECT 3", audit_id=3))  # no thread
    assert store.last_turn(thread) == ThreadTurn(database="shop", question="q2", sql="SELECT 2", audit_id=2)
    assert store.last_turn(other) is None and store.last_turn(SLACK_A) is None


def test_a_delivery_is_claimed_once_across_stores(open_store: OpenStore) -> None:
    clock = StepClock()
    first, second = open_store(clock), open_store(clock)  # two replicas on one registry
    assert first.claim("slack:T1:C1:1.0") and not second.claim("slack:T1:C1:1.0") and not first.claim("slack:T1:C1:1.0")
    assert second.claim("slack:T1:C1:2.0")
    # Old claims are forgotten on the way, so the table does not grow without end.
    clock.advance(days=2)
    assert first.claim("slack:T1:C1:1.0")
