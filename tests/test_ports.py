"""The core's collaborators (``bot.core.ports``) held to one behaviour: every test here runs
against the real implementation over the registry database (``bot.state``) and the in-memory
one (``bot.core.memory``), so a test of the core written over ``MemoryState`` means what it
says about production."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.core.memory import MemoryCatalog, MemoryState
from bot.core.ports import BotState, Catalog
from bot.core.types import AuditRecord, ThreadTurn, Where
from bot.state import RegistryCatalog, StoreState
from bot.store import BotStore, InvalidRating, UnknownAuditEntry
from chat2sql import errors
from chat2sql.messages import user_message
from chat2sql.settings import Settings
from schemas.registry import Registry

ALICE = Where(platform="slack", workspace="T1", channel="C1", user_id="U-ALICE", thread="100.1")
BOB = Where(platform="slack", workspace="T1", channel="C1", user_id="U-BOB")
ELSEWHERE = Where(platform="slack", workspace="T1", channel="C2", user_id="U-ALICE")
OTHER_TEAM = Where(platform="slack", workspace="T2", channel="C1", user_id="U-EVE")
pytestmark = pytest.mark.asyncio

TEAMS = Where(platform="teams", workspace="T1", channel="C1", user_id="29:x")


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture(params=["store", "memory"])
async def state(request: pytest.FixtureRequest, settings: Settings, clock: Clock) -> AsyncIterator[BotState]:
    if request.param == "memory":
        made: BotState = MemoryState(clock=clock)
    else:
        store = BotStore.open(settings)
        store._clock = clock  # the store's own clock, for the claims' expiry
        made = StoreState(store)
    yield made
    await made.close()


def _record(where: Where, question: str, **fields: object) -> AuditRecord:
    return AuditRecord(
        platform=where.platform,
        workspace=where.workspace,
        channel=where.channel,
        user_id=where.user_id,
        question=question,
        trace_id="t",
        **fields,  # type: ignore[arg-type]
    )


async def test_audit_rows_are_numbered_and_updated(state: BotState) -> None:
    first = await state.record(_record(ALICE, "how many?", database="hr", sql="SELECT 1"))
    second = await state.record(_record(BOB, "who?", error_kind="rate_limited"))
    assert second > first
    entry = await state.get(first)
    assert entry is not None and entry.question == "how many?" and entry.database == "hr" and entry.id == first
    await state.set_preview_rows(first, 7)
    assert (await state.get(first)).preview_rows == 7  # type: ignore[union-attr]
    await state.set_preview_error(first, "timeout")
    updated = await state.get(first)
    assert updated is not None and updated.preview_error == "timeout"
    assert await state.get(999_999) is None


async def test_feedback_needs_a_known_answer_and_a_known_rating(state: BotState) -> None:
    audit_id = await state.record(_record(ALICE, "how many?", database="hr", sql="SELECT 1"))
    assert await state.add_feedback(audit_id=audit_id, user_id="U-ALICE", rating="up") > 0
    with pytest.raises(UnknownAuditEntry):
        await state.add_feedback(audit_id=999_999, user_id="U-ALICE", rating="up")
    with pytest.raises(InvalidRating):
        await state.add_feedback(audit_id=audit_id, user_id="U-ALICE", rating="meh")  # type: ignore[arg-type]


async def test_examples_replace_the_same_question_and_share_only_admins_and_ones_own(state: BotState) -> None:
    own_audit = await state.record(_record(ALICE, "How many staff?", database="hr", sql="SELECT 1"))
    bobs_audit = await state.record(_record(BOB, "Bob's question", database="hr", sql="SELECT 2"))
    first = await state.add_example(
        database="hr",
        question="How many staff?",
        sql="SELECT 1",
        source="feedback",
        created_by="U",
        schema_hash="h",
        audit_id=own_audit,
    )
    again = await state.add_example(
        database="hr",
        question="  how many staff ",
        sql="SELECT 3",
        source="feedback",
        created_by="U",
        schema_hash="h",
        audit_id=own_audit,
    )
    assert again == first and [e.sql for e in await state.examples("hr")] == ["SELECT 3"]
    bobs = await state.add_example(
        database="hr",
        question="Bob's question",
        sql="SELECT 2",
        source="feedback",
        created_by="U-BOB",
        schema_hash="h",
        audit_id=bobs_audit,
    )
    admins = await state.add_example(
        database="hr", question="Payroll?", sql="SELECT 4", source="admin", created_by="A", schema_hash="h"
    )
    shared = {e.id for e in await state.shareable_examples("hr", ALICE)}
    assert shared == {first, admins} and bobs not in shared  # never another user's question

    await state.set_example_status(admins, status="set_aside", reason="column gone", schema_hash="h2")
    aside = next(e for e in await state.examples("hr") if e.id == admins)
    assert (aside.status, aside.reason, aside.schema_hash) == ("set_aside", "column gone", "h2")
    assert admins not in {e.id for e in await state.shareable_examples("hr", ALICE)}
    removed = await state.remove_example(bobs)
    assert removed is not None and removed.id == bobs and await state.remove_example(bobs) is None
    assert await state.examples("other") == []


async def test_most_used_databases_count_ones_own_answers(state: BotState) -> None:
    for database in ("hr", "shop", "shop"):
        await state.record(_record(ALICE, "q", database=database, sql="SELECT 1"))
    await state.record(_record(ALICE, "q", database="hr", error_kind="guard"))  # not an answer
    await state.record(_record(OTHER_TEAM, "q", database="sales", sql="SELECT 1"))  # someone else
    assert await state.most_used_databases(ALICE) == ["shop", "hr"]
    assert await state.most_used_databases(BOB) == []


async def test_access_follows_origin_then_the_channels_own_rule(state: BotState) -> None:
    assert await state.is_allowed("cli_db", OTHER_TEAM)  # registered from the CLI: open everywhere
    await state.set_origin("hr", platform="slack", workspace="T1")
    assert await state.is_allowed("hr", ALICE) and await state.is_allowed("hr", ELSEWHERE)
    assert not await state.is_allowed("hr", OTHER_TEAM) and not await state.is_allowed("hr", TEAMS)
    await state.grant("hr", OTHER_TEAM)
    await state.revoke("hr", ELSEWHERE)
    assert await state.is_allowed("hr", OTHER_TEAM) and not await state.is_allowed("hr", ELSEWHERE)
    assert await state.is_allowed("hr", ALICE)  # the revoke was for one channel only

    await state.set_default(ALICE, "hr")
    assert await state.default(BOB) == "hr" and await state.default(ELSEWHERE) is None  # per channel
    await state.add_example(
        database="hr", question="q", sql="SELECT 1", source="admin", created_by="A", schema_hash="h"
    )
    await state.forget("hr")
    assert await state.default(ALICE) is None and await state.examples("hr") == []
    assert await state.is_allowed("hr", OTHER_TEAM) and await state.is_allowed("hr", ELSEWHERE)  # no rules left


async def test_turns_belong_to_a_thread(state: BotState) -> None:
    turn = ThreadTurn(database="hr", question="who?", sql="SELECT name FROM employees", audit_id=1)
    await state.remember_turn(ALICE, turn)
    await state.remember_turn(BOB, turn)  # no thread: nothing to follow up
    assert await state.last_turn(ALICE) == turn and await state.last_turn(BOB) is None
    other_thread = dataclasses.replace(ALICE, thread="200.2")
    assert await state.last_turn(other_thread) is None
    await state.forget_turn(ALICE)
    assert await state.last_turn(ALICE) is None


async def test_a_delivery_is_claimed_once_until_it_expires(state: BotState, clock: Clock) -> None:
    assert await state.claim("slack:Ev1") and not await state.claim("slack:Ev1")
    assert await state.claim("slack:Ev2")
    clock.now += dt.timedelta(days=2)
    assert await state.claim("slack:Ev1")  # the old claim was deleted on the way


@pytest_asyncio.fixture(params=["registry", "memory"])
async def catalog(request: pytest.FixtureRequest, settings: Settings, sqlite_url: str) -> AsyncIterator[Catalog]:
    registry = Registry.open(settings)
    registry.add("hr", sqlite_url, registered_by="admin", description="People data")
    made: Catalog
    if request.param == "memory":
        made = MemoryCatalog([registry.get("hr")], urls={"hr": sqlite_url})
        registry.close()
    else:
        made = RegistryCatalog(registry)
    yield made
    await made.close()


async def test_the_catalog_lists_gets_and_refuses_unknown_names(catalog: Catalog, sqlite_url: str) -> None:
    assert await catalog.names() == ("hr",)
    entry = await catalog.get("hr")
    assert (
        entry.name == "hr"
        and entry.description == "People data"
        and [e.name for e in await catalog.entries()] == ["hr"]
    )
    assert await catalog.connection_url("hr") == sqlite_url
    assert await catalog.glossary("hr") == ()
    with pytest.raises(errors.UnknownDatabase) as refused:
        await catalog.get("nope")
    assert "hr" in user_message(refused.value)
    with pytest.raises(errors.UnknownDatabase):
        await catalog.connection_url("nope")
