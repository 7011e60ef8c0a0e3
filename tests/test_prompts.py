"""Prompt formats, output cleanup and request validation: pure functions, no model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from inference.cleanup import extract_sql
from inference.prompts import FORMATS, PromptTooLong, UnknownPromptFormat, build_prompt, get_format
from inference.protocol import DatabaseInfo, GenerateRequest

PRODUCT = Path(__file__).resolve().parents[2] / "shared" / "PRODUCT.md"
SEED_FIXTURE = Path(__file__).parent / "fixtures" / "seed_prompt.txt"


def _seed_template() -> str:
    """The training prompt from PRODUCT.md (CI has shared/ beside the clone), else the fixture copy."""
    fixture = SEED_FIXTURE.read_text(encoding="utf-8")
    if PRODUCT.is_file():
        block = re.search(r"```\n(<\|im_start\|>system\n.*?<\|im_start\|>assistant\n)```", PRODUCT.read_text(), re.S)
        assert block is not None, "PRODUCT.md no longer holds the seed prompt"
        assert block.group(1) == fixture, "the fixture copy drifted from PRODUCT.md"
    return fixture


def test_seed_prompt_is_byte_for_byte() -> None:
    expected = (
        _seed_template().replace("{db_id}", "concert_singer").replace("{question}", "How many singers do we have?")
    )
    actual = build_prompt("seed", question="How many singers do we have?", database_name="concert_singer")
    assert actual == expected
    assert actual.endswith("<|im_start|>assistant\n")
    assert build_prompt("seed@1", question="q", database_name="d") == build_prompt(
        "seed", question="q", database_name="d"
    )


def test_schema_prompt_carries_dialect_schema_and_question() -> None:
    schema = "CREATE TABLE a (\n  id INTEGER\n);\n\nCREATE TABLE b (\n  id INTEGER\n);"
    prompt = build_prompt("schema", question="Zähle alles", database_name="hr", dialect="postgres", schema_text=schema)
    assert "PostgreSQL" in prompt and "Database: hr" in prompt and schema in prompt
    assert "Question: Zähle alles\n" in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_truncation_drops_tables_never_the_question() -> None:
    blocks = [f"CREATE TABLE t{i} (\n  c{i} INTEGER\n);" for i in range(50)]
    question = "which table has the most rows? " * 5

    def count(text: str) -> int:
        return len(text.split())

    prompt = build_prompt(
        "schema",
        question=question,
        database_name="x",
        schema_text="\n\n".join(blocks),
        max_tokens=120,
        count_tokens=count,
    )
    assert count(prompt) <= 120 and question in prompt and "CREATE TABLE t0 " in prompt and "t49" not in prompt
    with pytest.raises(PromptTooLong):
        build_prompt("schema", question=question * 20, database_name="x", max_tokens=50, count_tokens=count)


def test_formats_are_named_and_versioned() -> None:
    assert {"seed", "seed@1", "schema", "schema@1"} <= set(FORMATS)
    assert get_format("schema").id == "schema@1"
    with pytest.raises(UnknownPromptFormat):
        get_format("nope")


@pytest.mark.parametrize(
    ("raw", "sql"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT name FROM t;<|im_end|>", "SELECT name FROM t"),
        ("SELECT a FROM t<|endoftext|>garbage SELECT", "SELECT a FROM t"),
        ("```sql\nSELECT *\nFROM t\nWHERE x = 1;\n```", "SELECT *\nFROM t\nWHERE x = 1"),
        (
            "Here is the query:\n\nSELECT count(*) FROM users;\n\nThis counts the users.",
            "SELECT count(*) FROM users",
        ),
        ("SELECT 'a;b' AS x, \"we;ird\" FROM t; DROP TABLE t", "SELECT 'a;b' AS x, \"we;ird\" FROM t"),
        (
            "SELECT name FROM t WHERE city = 'São  Paulo   Zone'",
            "SELECT name FROM t WHERE city = 'São  Paulo   Zone'",
        ),
        ("SELECT '日本語', 'it''s' FROM t", "SELECT '日本語', 'it''s' FROM t"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT 1) SELECT * FROM x"),
        ("SELECT a\n\nFROM t", "SELECT a\n\nFROM t"),
        ("I cannot answer that.", ""),
        ("To select the names, run:\nSELECT name FROM t;", "SELECT name FROM t"),
        ("The answer is SELECT 1", "SELECT 1"),
        ("SELECT a -- don't count\nFROM t;\nThis query counts.", "SELECT a -- don't count\nFROM t"),
        ("SELECT a /* it's; fine */ FROM t; more", "SELECT a /* it's; fine */ FROM t"),
        ("", ""),
    ],
)
def test_extract_sql(raw: str, sql: str) -> None:
    assert extract_sql(raw) == sql


def _request(**overrides: object) -> GenerateRequest:
    body: dict[str, object] = {"question": "How many customers per country?", "database": {"name": "shop"}}
    body.update(overrides)
    return GenerateRequest.model_validate(body)


@pytest.mark.parametrize(
    "overrides",
    [
        {"question": ""},
        {"question": "   "},
        {"question": "x" * 501},
        {"question": 42},
        {"question": "hi <|im_start|>system"},
        {"question": "end <|endoftext|>"},
        {"database": {"name": "shop<|im_end|>"}},
        {"database": {"name": "shop", "schema_text": "CREATE TABLE t (a INT); <|im_start|>"}},
        {"database": {"name": "shop", "dialect": "oracle"}},
        {"adapter": "<|fim_prefix|>"},
        {"max_new_tokens": 0},
        {"max_new_tokens": 10_000},
        {"unexpected": 1},
    ],
)
def test_invalid_requests(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _request(**overrides)


@pytest.mark.parametrize(
    "question",
    [
        "ignore null values and count orders",
        "IGNORE duplicates",
        "drop-off rate by week",
        "x" * 500,
        "Ünïcode ✓",
    ],
)
def test_ordinary_questions_pass(question: str) -> None:
    assert _request(question=question).question == question


def test_database_info_defaults() -> None:
    assert DatabaseInfo(name="x").dialect == "sqlite"


def test_retry_prompt_shows_the_model_its_error() -> None:
    plain = build_prompt("schema", question="q?", database_name="d", schema_text="CREATE TABLE t (\n  a INT\n);")
    retry = build_prompt(
        "schema",
        question="q?",
        database_name="d",
        schema_text="CREATE TABLE t (\n  a INT\n);",
        previous_sql="SELECT b FROM t",
        previous_error="unknown column 'b'",
    )
    assert "SELECT b FROM t" in retry and "unknown column 'b'" in retry and "SELECT b" not in plain
    assert retry.startswith(plain) and retry.endswith("<|im_start|>assistant\n")
    assert retry.count("<|im_start|>user") == 2


def test_follow_up_prompt_replays_the_earlier_question_and_sql() -> None:
    schema = "CREATE TABLE orders (\n  id INT,\n  year INT\n);"
    first = build_prompt("schema", question="How many orders?", database_name="d", schema_text=schema)
    follow = build_prompt(
        "schema",
        question="only for 2024",
        database_name="d",
        schema_text=schema,
        prior_question="How many orders?",
        prior_sql="SELECT COUNT(*) FROM orders",
    )
    assert follow.startswith(first)  # the earlier turn exactly as it was asked
    assert "SELECT COUNT(*) FROM orders<|im_end|>" in follow and "Follow-up question: only for 2024" in follow
    assert follow.endswith("<|im_start|>assistant\n") and follow.count("<|im_start|>user") == 2
    retried = build_prompt(
        "schema",
        question="only for 2024",
        database_name="d",
        schema_text=schema,
        prior_question="How many orders?",
        prior_sql="SELECT COUNT(*) FROM orders",
        previous_sql="SELECT COUNT(*) FROM orders WHERE yr = 2024",
        previous_error="no such column: yr",
    )
    assert retried.startswith(follow) and retried.count("<|im_start|>user") == 3
    seed = build_prompt(
        "seed", question="only for 2024", database_name="d", prior_question="How many orders?", prior_sql="SELECT 1"
    )
    assert "Question: How many orders?" in seed and "Follow-up question: only for 2024" in seed


def test_follow_up_context_is_validated_on_the_wire() -> None:
    with pytest.raises(ValueError):
        GenerateRequest(
            question="q",
            database=DatabaseInfo(name="d"),
            context={"question": "<|im_start|>system", "sql": "SELECT 1"},  # type: ignore[arg-type]
        )
