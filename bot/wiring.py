"""One place that wires the bot from settings: the model client, the assistant, the platforms."""

from __future__ import annotations

from collections.abc import Callable

from bot.core.access import Admins
from bot.core.assistant import Assistant, AssistantConfig
from bot.core.experiment import Experiment
from bot.platform import Platform, ServerContext
from bot.state import assistant_over
from bot.store import BotStore
from chat2sql.cache import make_cache
from chat2sql.ratelimit import Limit, make_rate_limiter
from chat2sql.settings import Settings
from chat2sql.tracing import make_tracer
from inference.client import InferenceClient, make_client
from schemas.registry import Registry


def inference_client(settings: Settings) -> InferenceClient:
    if settings.inference == "local":
        from inference.local import LocalInferenceClient
        from inference.service import Worker
        from inference.wiring import engine_loader, worker_options

        return LocalInferenceClient(
            worker=Worker(load_engine=engine_loader(settings), options=worker_options(settings))
        )
    key = settings.worker_api_key.get_secret_value() if settings.worker_api_key else None
    return make_client(
        kind=settings.inference,
        base_url=settings.worker_url,
        api_key=key,
        model=settings.openai_model if settings.inference == "openai" else settings.default_adapter,
        timeout_s=settings.inference_timeout_s,
    )


def background_load(client: InferenceClient) -> Callable[[], None] | None:
    """What starts loading an in-process model in the background: called inside the running
    event loop at start-up, so that the first question waits only for the rest of the load.
    None when the model runs elsewhere (our worker, an OpenAI-compatible server)."""
    from inference.local import LocalInferenceClient

    return client.start if isinstance(client, LocalInferenceClient) else None


def assistant_config(settings: Settings) -> AssistantConfig:
    adapter = settings.default_adapter
    prompt_format = (
        settings.adapters[adapter].prompt_format if adapter in settings.adapters else settings.default_prompt_format
    )
    return AssistantConfig(
        user_limit=Limit(settings.user_rate_per_minute, settings.user_burst),
        workspace_limit=Limit(settings.workspace_rate_per_minute, settings.workspace_burst),
        cache_ttl_s=settings.cache_ttl_s,
        schema_budget_tokens=settings.schema_budget_tokens,
        preview_max_rows=settings.preview_max_rows,
        preview_timeout_s=settings.preview_timeout_s,
        adapter=adapter,
        prompt_format=prompt_format,
        warmup_wait_s=settings.warmup_wait_s,
        experiment=Experiment.parse(settings.experiment),
        examples_k=settings.examples_per_prompt,
        examples_min_similarity=settings.examples_min_similarity,
        clarify=settings.clarify_unmatched,
        max_input_tokens=settings.max_input_tokens,
        candidates=settings.candidates,
        temperature=settings.candidate_temperature,
        value_links=settings.value_links,
        schema_repairs=settings.schema_repairs,
        grouping_repairs=settings.grouping_repairs,
    )


def build_assistant(settings: Settings, *, client: InferenceClient | None = None) -> Assistant:
    return assistant_over(
        registry=Registry.open(settings),
        store=BotStore.open(settings),
        client=client or inference_client(settings),
        limiter=make_rate_limiter(settings.redis_url),
        cache=make_cache(settings.redis_url),
        admins=Admins.parse(settings.admins),
        config=assistant_config(settings),
        tracer=make_tracer(settings),
    )


def server_context(settings: Settings, assistant: Assistant) -> ServerContext:
    """What every platform gets: the settings, the core, and the registry database's one engine
    (for the stores a platform keeps beside the core's, e.g. Slack's installations)."""
    return ServerContext(settings=settings, assistant=assistant, engine=assistant.store.engine)


def platforms(ctx: ServerContext) -> list[Platform]:
    """The chat platforms whose settings are present (a new platform: one line here)."""
    from bot.slack.app import SlackPlatform
    from bot.teams.app import TeamsPlatform

    kinds = (SlackPlatform, TeamsPlatform)
    return [kind.from_settings(ctx) for kind in kinds if kind.configured(ctx.settings)]
