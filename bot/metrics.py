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
