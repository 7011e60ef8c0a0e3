"""Answers that learn: verified examples from 👍, admin corrections and admin commands, set
aside after a schema change; clarifying questions instead of guesses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.core.examples import select, similarity
from bot.core.types import VerifiedExample, Where
from chat2sql.settings import Settings
from inference.prompts import build_prompt
from tests.support.assistant import ADMIN, ALICE, make_assistant
from tests.support.clients import ScriptedClient
from tests.support.databases import make_sqlite, sample_script

GOOD = "SELECT name FROM employees ORDER BY id"


async def _bot(settings: Settings, sqlite_url: str, answers: list[str | Exception] | None = None, **config: object):
    client = ScriptedClient(answers or [GOOD])
    config.setdefault("examples_min_similarity", 0.3)  # the mechanics; the default threshold has its own test
    bot = make_assistant(settings, client, cache_ttl_s=0, **config)
    reply = await bot.handle(f"admin register hr {sqlite_url} People", ADMIN)
    assert reply.kind == "text", reply.text
    return bot, client


@pytest.mark.asyncio
async def test_thumbs_up_makes_an_example_that_similar_questions_see(settings: Settings, sqlite_url: str) -> None:
    bot, client = await _bot(settings, sqlite_url)
    first = await bot.handle("list the names of all employees", ALICE)
    assert first.answer is not None and client.requests[0].examples == []
    thanks = await bot.feedback(first.answer.audit_id, ALICE, "up")
    assert thanks.kind == "text"
    assert bot.store.examples("hr") == [] and "example" not in thanks.text  # a user's 👍 is feedback only
    kept = await bot.feedback(first.answer.audit_id, ADMIN, "up")  # an admin's 👍 makes the example
    assert kept.kind == "text" and "Kept as a verified example for `hr`" in kept.text
    (example,) = bot.store.examples("hr")
    assert example.source == "thumbs_up" and example.sql == first.answer.sql and example.status == "active"

    await bot.handle("names of the employees in engineering", ALICE)
    shown = client.requests[-1].examples
    assert [(e.question, e.sql) for e in shown] == [("list the names of all employees", first.answer.sql)]
    await bot.handle("how many departments are there", ALICE)  # nothing in common: no example
    assert client.requests[-1].examples == []
    await bot.close()


@pytest.mark.asyncio
async def test_corrections_become_examples_only_from_admins_and_only_if_valid(
    settings: Settings, sqlite_url: str
) -> None:
    bot, _ = await _bot(settings, sqlite_url)
    answer = (await bot.handle("who works in engineering?", ALICE)).answer
    assert answer is not None
    by_user = await bot.feedback(answer.audit_id, ALICE, "down", "SELECT name FROM employees WHERE department_id = 1")
    assert "admin can make" in by_user.text and bot.store.examples("hr") == []
    bad = await bot.feedback(answer.audit_id, ADMIN, "down", "DELETE FROM employees")
    assert "not kept" in bad.text and bot.store.examples("hr") == []
    good = await bot.feedback(answer.audit_id, ADMIN, "down", "SELECT name FROM employees WHERE department_id = 1;")
    assert "Kept as a verified example" in good.text
    (example,) = bot.store.examples("hr")
    assert example.source == "correction" and example.sql == "SELECT name FROM employees WHERE department_id = 1"
    await bot.close()


@pytest.mark.asyncio
async def test_admin_commands_list_add_and_remove_examples(settings: Settings, sqlite_url: str) -> None:
    bot, client = await _bot(settings, sqlite_url)
    empty = await bot.handle("admin examples hr", ADMIN)
    assert "no verified examples" in empty.text
    added = await bot.handle("admin example add hr How many employees? => SELECT COUNT(*) FROM employees", ADMIN)
    assert added.kind == "text" and "Example #1 added" in added.text
    refused = await bot.handle("admin example add hr Drop it => DROP TABLE employees", ADMIN)
    assert refused.kind == "error" and bot.store.examples("hr")[0].id == 1 and len(bot.store.examples("hr")) == 1
    malformed = await bot.handle("admin example add hr no arrow here", ADMIN)
    assert malformed.kind == "error" and "Usage" in malformed.text
    not_admin = await bot.handle("admin example add hr Q => SELECT 1", ALICE)
    assert not_admin.error_kind == "AdminOnly"
    listing = await bot.handle("admin examples hr", ADMIN)
    assert "#1 (admin) How many employees? → `SELECT COUNT(*) FROM employees`" in listing.text

    await bot.handle("how many employees do we have?", ALICE)
    assert client.requests[-1].examples[0].sql == "SELECT COUNT(*) FROM employees"

    assert "removed" in (await bot.handle("admin example remove 1", ADMIN)).text
    assert "no example #1" in (await bot.handle("admin example remove #1", ADMIN)).text
    await bot.close()


@pytest.mark.asyncio
async def test_examples_that_no_longer_pass_after_a_refresh_are_set_aside(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "hr.db"
    url = make_sqlite(path, sample_script("sqlite"))
    bot, client = await _bot(settings, url)
    await bot.handle("admin example add hr Salary of each employee => SELECT name, salary FROM employees", ADMIN)
    await bot.handle("admin example add hr Names of employees => SELECT name FROM employees", ADMIN)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP VIEW department_payroll")
        conn.execute("ALTER TABLE employees DROP COLUMN salary")
    refreshed = await bot.handle("admin refresh hr", ADMIN)
    assert refreshed.kind == "text"
    listing = await bot.handle("admin examples hr", ADMIN)
    assert "set aside: known_columns" in listing.text and listing.text.count("set aside") == 1
    await bot.handle("what is the salary of each employee, and their names?", ALICE)
    assert [e.sql for e in client.requests[-1].examples] == ["SELECT name FROM employees"]
    await bot.close()


@pytest.mark.asyncio
async def test_a_question_that_matches_nothing_gets_choices(
    settings: Settings, sqlite_url: str, tmp_path: Path
) -> None:
    bot, client = await _bot(settings, sqlite_url, clarify=True)
    await bot.handle("use hr", ALICE)
    reply = await bot.handle("what is the weather like?", ALICE)
    assert reply.kind == "error" and reply.error_kind == "Unmatched" and client.requests == []
    assert "couldn't match" in reply.text and reply.options
    labels = [o.label for o in reply.options]
    assert "employees" in labels and len(labels) <= 4
    chosen = next(o for o in reply.options if o.label == "employees")
    again = await bot.handle(chosen.text, ALICE)  # the button's text, as the user's next message
    assert again.kind == "answer" and "employees" in client.requests[-1].question

    # Another database here that the question does match is offered first.
    shop = make_sqlite(tmp_path / "shop.db", "CREATE TABLE weather (day TEXT, city TEXT, temperature REAL);")
    await bot.handle(f"admin register shop {shop}", ADMIN)
    other = await bot.handle("what is the weather like?", ALICE)
    assert other.options[0].label == "db:shop" and other.options[0].text == "[db:shop] what is the weather like?"
    await bot.close()


@pytest.mark.asyncio
async def test_clarification_is_off_when_configured_and_for_follow_ups(settings: Settings, sqlite_url: str) -> None:
    bot, _ = await _bot(settings, sqlite_url, clarify=False)
    assert (await bot.handle("what is the weather like?", ALICE)).kind == "answer"
    await bot.handle("admin remove hr", ADMIN)
    await bot.close()
    bot, _ = await _bot(settings, sqlite_url, clarify=True)
    thread = Where(platform="slack", workspace="T1", channel="C-general", user_id="U-alice", thread="9.0")
    assert (await bot.handle("names of employees", thread)).kind == "answer"
    assert (await bot.handle("and sort them backwards please", thread)).kind == "answer"  # a follow-up
    await bot.close()


@pytest.mark.asyncio
async def test_sql_that_fails_twice_offers_tables(settings: Settings, sqlite_url: str) -> None:
    bot, client = await _bot(settings, sqlite_url, ["SELECT headcount FROM departments"])
    reply = await bot.handle("what do departments pay?", ALICE)
    assert reply.error_kind == "GuardRejected" and len(client.requests) == 2
    labels = [o.label for o in reply.options]
    assert labels[:2] == ["department_payroll", "departments"] and "Pick the data" in reply.text
    await bot.close()


@pytest.mark.asyncio
async def test_retry_can_be_turned_off(settings: Settings, sqlite_url: str) -> None:
    bot, client = await _bot(settings, sqlite_url, ["SELECT headcount FROM departments"], retry=False)
    reply = await bot.handle("what do departments pay?", ALICE)
    assert reply.error_kind == "GuardRejected" and len(client.requests) == 1
    await bot.close()


def test_selection_prefers_similar_questions_within_budget() -> None:
    def ex(i: int, q: str, sql: str = "SELECT 1") -> VerifiedExample:
        return VerifiedExample(id=i, database="d", question=q, sql=sql, source="admin", status="active", reason=None,
                               schema_hash="h", created_by="x")  # fmt: skip

    pool = [ex(1, "sales by region"), ex(2, "total sales by country"), ex(3, "headcount"), ex(4, "sales per year")]
    chosen = select(pool, "total sales by region", k=2, budget_tokens=400, min_similarity=0.1)
    assert [e.id for e in chosen] == [1, 2]
    assert select(pool, "total sales by region", k=5, budget_tokens=8, min_similarity=0.1) == []
    # By default only close paraphrases are shown.
    assert [e.id for e in select(pool, "sales per region", k=3, budget_tokens=400)] == [1]
    assert select(pool, "total sales by region", k=3, budget_tokens=400) == []
    assert similarity("", "sales") == 0.0


def test_examples_change_the_schema_prompt_but_never_the_seed_prompt() -> None:
    pairs = [("How many employees?", "SELECT COUNT(*) FROM employees")]
    plain = build_prompt("schema", question="q?", database_name="hr", schema_text="CREATE TABLE employees (id INT);")
    with_examples = build_prompt(
        "schema", question="q?", database_name="hr", schema_text="CREATE TABLE employees (id INT);", examples=pairs
    )
    assert "Verified examples for this database:\nQuestion: How many employees?\nSQL: SELECT COUNT(*)" in with_examples
    assert (
        with_examples.replace(
            "\n\nVerified examples for this database:\nQuestion: How many employees?\nSQL: SELECT COUNT(*) FROM employees",
            "",
        )
        == plain
    )
    seed = build_prompt("seed", question="q?", database_name="hr")
    assert build_prompt("seed", question="q?", database_name="hr", examples=pairs) == seed
