"""Prometheus metrics of the chat server, on a registry of its own (one per app, so tests
and several apps in one process never collide). ``/metrics`` serves them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Acks must land far under Slack's 3 s; answers take seconds (a cold GPU, a minute or more).
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
ANSWER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)


class BotMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.ack_seconds = Histogram(
            "chat2sql_bot_ack_seconds",
            "Request in to acknowledgement out.",
            ["platform", "kind"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.answer_seconds = Histogram(
            "chat2sql_bot_answer_seconds",
            "Question in to final reply sent.",
            ["platform"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.replies = Counter(
            "chat2sql_bot_replies_total",
            "Final replies by outcome (answer, text, error kind).",
            ["platform", "outcome"],
            registry=r,
        )
        self.duplicates = Counter(
            "chat2sql_bot_duplicate_deliveries_total",
            "Platform retries of a delivery already taken.",
            ["platform"],
            registry=r,
        )
        self.rejected = Counter(
            "chat2sql_bot_rejected_requests_total",
            "Requests refused before any work (signature, auth).",
            ["platform"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "chat2sql_bot_delivery_failures_total",
            "Replies the platform refused or that could not be sent.",
            ["platform"],
            registry=r,
        )
        self.in_flight = Gauge(
            "chat2sql_bot_questions_in_flight", "Questions being answered now.", ["platform"], registry=r
        )

        # --- the core: every question, whatever the platform ---------------------------------
        self.questions = Counter(
            "chat2sql_bot_questions_total", "Questions by outcome (answer or error kind).", ["outcome"], registry=r
        )
        self.question_seconds = Histogram(
            "chat2sql_bot_question_seconds", "End to end inside the core.", buckets=ANSWER_BUCKETS, registry=r
        )
        self.generation_seconds = Histogram(
            "chat2sql_bot_generation_seconds", "One model call as the bot sees it.", buckets=ANSWER_BUCKETS, registry=r
        )
        self.preview_seconds = Histogram(
            "chat2sql_bot_preview_seconds", "Read-only preview runs.", buckets=ANSWER_BUCKETS, registry=r
        )
        self.errors = Counter("chat2sql_bot_errors_total", "Failed questions by error kind.", ["kind"], registry=r)
        self.tokens = Counter("chat2sql_bot_tokens_total", "Model tokens, prompt and completion.", ["kind"], registry=r)
        self.tokens_per_request = Histogram(
            "chat2sql_bot_tokens_per_request",
            "Prompt plus completion tokens of one model call.",
            buckets=(50, 100, 150, 250, 500, 1000, 2000, 4000),
            registry=r,
        )
        self.generations = Counter("chat2sql_bot_generations_total", "Model calls answered.", registry=r)
        self.cold_starts = Counter(
            "chat2sql_bot_cold_starts_total", "Model calls that met a cold or loading worker.", registry=r
        )
        self.cache = Counter("chat2sql_bot_cache_lookups_total", "Response cache lookups.", ["result"], registry=r)
        self.guard_verdicts = Counter(
            "chat2sql_bot_guard_verdicts_total",
            "Guard verdicts: accepted or the rejecting rule.",
            ["verdict"],
            registry=r,
        )
        self.rate_limited = Counter(
            "chat2sql_bot_rate_limited_total", "Questions refused by a rate limit.", ["scope"], registry=r
        )
        self.retries = Counter("chat2sql_bot_retries_total", "Automatic retries after a refused answer.", registry=r)
        self.schema_repairs = Counter(
            "chat2sql_bot_schema_repairs_total",
            "Schema repairs of candidates that all named an unknown table or column: tried, answered.",
            ["result"],
            registry=r,
        )
