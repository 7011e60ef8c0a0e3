"""The core (``Assistant``) over a scripted instant engine, on the test's own registry and
store, and the users the tests speak as."""

from __future__ import annotations

from bot.core.access import Admins
from bot.core.assistant import Assistant, AssistantConfig
from bot.state import assistant_over
from bot.store import BotStore, Where
from chat2sql.cache import InMemoryCache, ResponseCache
from chat2sql.ratelimit import InMemoryRateLimiter, Limit, RateLimiter
from chat2sql.settings import Settings
from chat2sql.tracing import Tracer
from inference.client import InferenceClient
from schemas.registry import Registry
from tests.support.clients import SampledClient, ScriptedClient

ALICE = Where(platform="slack", workspace="T1", channel="C-general", user_id="U-alice")
ADMIN = Where(platform="slack", workspace="T1", channel="C-general", user_id="U-admin")
BOB = Where(platform="slack", workspace="T1", channel="C-general", user_id="U-bob")
OTHER_WS = Where(platform="slack", workspace="T2", channel="C-x", user_id="U-bob")


def assistant_config(**overrides: object) -> AssistantConfig:
    """Generous rate limits (no test meets them by accident), anything else as given."""
    base: dict[str, object] = {"user_limit": Limit(600, 100), "workspace_limit": Limit(6000, 1000)}
    base.update(overrides)
    return AssistantConfig(**base)  # type: ignore[arg-type]


def make_assistant(
    settings: Settings,
    client: InferenceClient,
    *,
    limiter: RateLimiter | None = None,
    cache: ResponseCache | None = None,
    tracer: Tracer | None = None,
    **config: object,
) -> Assistant:
    """The core over ``client``; ``slack:U-admin`` and every console user are admins."""
    return assistant_over(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=client,
        limiter=limiter or InMemoryRateLimiter(),
        cache=cache or InMemoryCache(),
        admins=Admins.parse("slack:U-admin,console:*"),
        config=assistant_config(**config),
        tracer=tracer,
    )


async def registered_assistant(
    settings: Settings, sqlite_url: str, client: SampledClient, **config: object
) -> Assistant:
    """An assistant on the scripted client with the sample database registered as ``hr``."""
    assistant = assistant_over(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=client,
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse("slack:U-admin"),
        config=AssistantConfig(
            user_limit=Limit(600, 100),
            workspace_limit=Limit(6000, 1000),
            **{"cache_ttl_s": 0, **config},  # type: ignore[arg-type]
        ),
    )
    reply = await assistant.handle(f"admin register hr {sqlite_url}", ADMIN)
    assert reply.kind == "text", reply.text
    return assistant


def console_assistant(settings: Settings, answers: list[str | Exception]) -> Assistant:
    """The core as the console channel builds it: every console user is an admin."""
    return assistant_over(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=ScriptedClient(answers),
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse("console:*"),
        config=AssistantConfig(user_limit=Limit(600, 100), workspace_limit=Limit(6000, 1000)),
    )
