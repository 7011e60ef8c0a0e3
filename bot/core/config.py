"""What the core is built from: its settings (``AssistantConfig``) and its collaborators
(``Services``, each behind its small interface)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.core import examples as verified
from bot.core.access import Admins
from bot.core.experiment import Experiment
from bot.core.ports import BotState, Catalog
from bot.metrics import BotMetrics
from chat2sql.cache import ResponseCache
from chat2sql.ratelimit import Limit, RateLimiter
from chat2sql.tracing import NoopTracer, Tracer
from inference.client import InferenceClient


@dataclass(frozen=True, kw_only=True)
class AssistantConfig:
    user_limit: Limit
    workspace_limit: Limit
    cache_ttl_s: float = 3600.0
    schema_budget_tokens: int = 1500
    max_input_tokens: int | None = 2048  # the worker's limit on a prompt; None: the schema budget alone
    preview_max_rows: int = 50
    preview_timeout_s: float = 5.0
    adapter: str | None = None
    prompt_format: str = "schema"
    warmup_wait_s: float = 240.0
    experiment: Experiment | None = None
    examples_k: int = 3  # verified examples per prompt (0: none)
    examples_budget_tokens: int = 400
    examples_min_similarity: float = verified.MIN_SIMILARITY
    retry: bool = True  # one automatic retry that shows the model its error
    clarify: bool = False  # ask back when a question matches nothing in the schema (on in production settings)
    candidates: int = 0  # sampled candidates beside the greedy one, chosen by their results (settings: 4)
    temperature: float = 0.7  # of the sampled candidates
    value_links: bool = True  # tell the model which columns hold the values the question names
    schema_repairs: bool = True  # all candidates failed on an unknown name: try schemas.repair's mends
    grouping_repairs: bool = True  # also try ungrouped aggregating candidates grouped (schemas.grouping)
    glossary: bool = True  # the database's glossary entries that the question concerns enter the prompt


@dataclass(frozen=True, kw_only=True)
class Services:
    """The core's collaborators."""

    catalog: Catalog
    state: BotState
    client: InferenceClient
    limiter: RateLimiter
    cache: ResponseCache
    admins: Admins
    metrics: BotMetrics = field(default_factory=BotMetrics)
    tracer: Tracer = field(default_factory=NoopTracer)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
