"""What the model is told beyond the schema: the columns holding the values a question names,
and the database's glossary (terms and metrics the question concerns, column notes, hidden
columns never shown)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.core.access import Admins
from bot.core.assistant import Assistant, AssistantConfig
from bot.store import BotStore, Where
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter, Limit
from chat2sql.settings import Settings
from inference.prompts import prompt_for
from inference.protocol import GenerateRequest
from schemas.registry import Registry
from tests.test_candidates import SampledClient

ADMIN = Where(platform="slack", workspace="T1", channel="C-general", user_id="U-admin")
ANSWER = "SELECT count(*) FROM employees"


@pytest_asyncio.fixture
async def bot(settings: Settings, sqlite_url: str) -> AsyncIterator[tuple[Assistant, SampledClient]]:
    client = SampledClient(lambda _: [ANSWER])
    assistant = Assistant(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=client,
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse("slack:U-admin"),
        config=AssistantConfig(user_limit=Limit(600, 100), workspace_limit=Limit(6000, 1000)),
    )
    reply = await assistant.handle(f"admin register hr {sqlite_url}", ADMIN)
    assert reply.kind == "text", reply.text
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
    assistant = Assistant(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=client,
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse("slack:U-admin"),
        config=AssistantConfig(user_limit=Limit(600, 100), workspace_limit=Limit(6000, 1000), value_links=False),
    )
    try:
        await assistant.handle(f"admin register hr {sqlite_url}", ADMIN)
        await assistant.ask("How many people work in engineering?", ADMIN)
    finally:
        await assistant.close()
    assert client.requests[-1].hints == [] and "Notes:" not in _prompt(client.requests[-1])
