"""What the model is told beyond the schema: the columns holding the values a question names,
and the database's glossary (terms and metrics the question concerns, column notes, hidden
columns never shown)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.core.assistant import Assistant
from chat2sql.settings import Settings
from inference.prompts import prompt_for
from inference.protocol import GenerateRequest
from tests.support.assistant import ADMIN, registered_assistant
from tests.support.clients import SampledClient

ANSWER = "SELECT count(*) FROM employees"


@pytest_asyncio.fixture
async def bot(settings: Settings, sqlite_url: str) -> AsyncIterator[tuple[Assistant, SampledClient]]:
    client = SampledClient(lambda _: [ANSWER])
    assistant = await registered_assistant(settings, sqlite_url, client, cache_ttl_s=3600.0)
    yield assistant, client
    await assistant.close()


def _prompt(request: GenerateRequest) -> str:
    return prompt_for(request, "schema")


@pytest.mark.asyncio
async def test_a_value_the_question_names_is_linked_to_its_column(bot: tuple[Assistant, SampledClient]) -> None:
    assistant, client = bot
    await assistant.ask("How many people work in engineering?", ADMIN)
    request = client.requests[-1]
    assert "'Engineering' is a value of departments.name" in request.hints
    assert "Notes:\n- 'Engineering' is a value of departments.name" in _prompt(request)


@pytest.mark.asyncio
async def test_without_value_links_the_prompt_is_unchanged(settings: Settings, sqlite_url: str) -> None:
    client = SampledClient(lambda _: [ANSWER])
    assistant = await registered_assistant(settings, sqlite_url, client, value_links=False)
    try:
        await assistant.ask("How many people work in engineering?", ADMIN)
    finally:
        await assistant.close()
    assert client.requests[-1].hints == [] and "Notes:" not in _prompt(client.requests[-1])


@pytest.mark.asyncio
async def test_the_glossary_shapes_what_the_model_sees(bot: tuple[Assistant, SampledClient]) -> None:
    assistant, client = bot
    for command in (
        'admin define hr "senior staff" => employees paid over 100000 a year',
        "admin define hr payroll => SUM(employees.salary)",
        "admin describe hr employees.hired_on => the first day at work",
        "admin hide hr employees.email",
    ):
        reply = await assistant.handle(command, ADMIN)
        assert reply.kind == "text", reply.text
    await assistant.ask("What is the payroll of the senior staff?", ADMIN)
    request = client.requests[-1]
    assert set(request.hints[:2]) == {
        "senior staff: employees paid over 100000 a year",
        "payroll = SUM(employees.salary)",
    }
    text = request.database.schema_text
    assert "the first day at work" in text and "email" not in text  # described, hidden
    assert not any("hired_on" in hint for hint in request.hints)  # a description is in the schema, once


@pytest.mark.asyncio
async def test_a_hidden_column_is_unknown_to_the_models_sql(bot: tuple[Assistant, SampledClient]) -> None:
    assistant, client = bot
    await assistant.handle("admin hide hr employees.email", ADMIN)
    client.script = lambda _: ["SELECT email FROM employees"]
    reply = await assistant.ask("What are the email addresses?", ADMIN)
    assert reply.kind == "error" and reply.error_kind == "GuardRejected" and "email" in reply.text
    assert "email" not in await assistant.schema_text("hr", ADMIN)


@pytest.mark.asyncio
async def test_a_new_glossary_version_is_a_new_cache_entry(bot: tuple[Assistant, SampledClient]) -> None:
    assistant, client = bot
    await assistant.handle("admin define hr payroll => SUM(employees.salary)", ADMIN)
    await assistant.ask("What is the payroll?", ADMIN)
    await assistant.ask("What is the payroll?", ADMIN)
    assert len(client.requests) == 1  # the second came from the cache
    await assistant.handle("admin define hr payroll => SUM(employees.salary) + 0", ADMIN)
    await assistant.ask("What is the payroll?", ADMIN)
    assert len(client.requests) == 2 and client.requests[-1].hints[0] == "payroll = SUM(employees.salary) + 0"
