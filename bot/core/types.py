"""The core's value types: who asked from where, what was asked and answered, and the
replies a surface renders. Plain frozen dataclasses with no behaviour beyond ``to_json``;
every layer above the core (the store, the adapters, the evaluation) speaks them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

Rating = Literal["up", "down"]
ExampleSource = Literal["thumbs_up", "correction", "admin"]


# --- who, what and what became of it -----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Where:
    """Who asked, and from where: the scope of access rules, defaults and audit rows."""

    platform: str
    workspace: str
    channel: str
    user_id: str
    thread: str | None = None  # a conversation inside the channel: its follow-ups share context


@dataclass(frozen=True, kw_only=True)
class ThreadTurn:
    """The last answer in a thread: a follow-up keeps its database and reads against it."""

    database: str
    question: str
    sql: str
    audit_id: int


@dataclass(frozen=True, kw_only=True)
class VerifiedExample:
    """A (question, SQL) pair known good for a database; ``set_aside`` ones no longer pass
    the guard on the current schema and are not shown to the model."""

    id: int
    database: str
    question: str
    sql: str
    source: str
    status: Literal["active", "set_aside"]
    reason: str | None
    schema_hash: str
    created_by: str


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One question and what became of it; ``guard_verdict`` is "accepted" or the rejecting rule."""

    platform: str
    workspace: str
    channel: str
    user_id: str
    question: str
    trace_id: str
    database: str | None = None
    sql: str | None = None
    guard_verdict: str | None = None
    preview_rows: int | None = None
    latency_ms: float | None = None
    cache_hit: bool = False
    error_kind: str | None = None
    adapter: str | None = None
    arm: str | None = None  # "experiment:a" or "experiment:b" during an A/B test
    preview_error: str | None = None


@dataclass(frozen=True, kw_only=True)
class AuditEntry(AuditRecord):
    """A stored ``AuditRecord`` with its id and UTC time."""

    id: int
    created_at: dt.datetime

    def to_json(self) -> dict[str, object]:
        fields = dataclasses.asdict(self)
        fields["created_at"] = self.created_at.isoformat()
        return {"id": fields.pop("id"), "created_at": fields.pop("created_at"), **fields}


@dataclass(frozen=True, kw_only=True)
class FeedbackEntry:
    id: int
    audit_id: int
    created_at: dt.datetime
    user_id: str
    rating: Rating
    corrected_sql: str | None

    def to_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "created_at": self.created_at.isoformat()}


# --- replies ------------------------------------------------------------------------------

# Tells the user something before the final reply (e.g. that the model is warming up).
Notify = Callable[[str], Awaitable[None]]

# Where a question is in its flow, for a surface that shows it (Slack's assistant status,
# Teams' informative stream updates); each step's words are ``messages.PROGRESS[step]``.
Step = Literal["finding_tables", "writing_sql", "checking", "retrying", "warming_up"]
Progress = Callable[[Step], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class Answer:
    sql: str
    database: str
    warnings: tuple[str, ...]
    latency_ms: float
    cache_hit: bool
    trace_id: str
    audit_id: int
    adapter: str | None = None


@dataclass(frozen=True, kw_only=True)
class Option:
    """A choice offered back to the user (a button): ``text`` is sent as their next message."""

    label: str
    text: str


@dataclass(frozen=True, kw_only=True)
class Reply:
    kind: Literal["answer", "text", "error"]
    text: str
    answer: Answer | None = None
    error_kind: str | None = None
    options: tuple[Option, ...] = ()  # a clarifying question's choices (which database, which table)


@dataclass(frozen=True, kw_only=True)
class PreviewReply:
    ok: bool
    text: str
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    truncated: bool = False
    elapsed_ms: float = 0.0
    sql: str = ""
    error_kind: str | None = None
