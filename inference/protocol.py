"""Wire models of the worker's HTTP API (``POST /v1/generate`` and friends).

Validation happens here, before a request can reach the model: lengths, types, and chat
control tokens in every text field. There is deliberately no keyword blocklist: "ignore
null values" is an ordinary question.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chat2sql.tokens import reject_control_tokens

MAX_QUESTION_CHARS = 500
MAX_SCHEMA_CHARS = 200_000
MAX_ERROR_CHARS = 500  # a retry's error, as the model is shown it
MAX_NEW_TOKENS_LIMIT = 512


Dialect = Literal["sqlite", "postgres", "mysql"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class DatabaseInfo(_Strict):
    name: str = Field(min_length=1, max_length=63)
    dialect: Dialect = "sqlite"
    schema_text: str = Field(default="", max_length=MAX_SCHEMA_CHARS)

    _tokens = field_validator("name", "schema_text")(reject_control_tokens)


class PreviousAttempt(_Strict):
    """The answer that failed and why, so the model can correct it (one automatic retry)."""

    sql: str = Field(min_length=1, max_length=4000)
    error: str = Field(min_length=1, max_length=MAX_ERROR_CHARS)

    _tokens = field_validator("sql", "error")(reject_control_tokens)


class PriorTurn(_Strict):
    """The previous question and its SQL in the same conversation: a follow-up in a thread
    ("only for 2024") is read against them."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    sql: str = Field(min_length=1, max_length=4000)

    _tokens = field_validator("question", "sql")(reject_control_tokens)


MAX_EXAMPLES = 5
MAX_HINTS = 12
MAX_HINT_CHARS = 400
MAX_SAMPLES = 8


class Example(_Strict):
    """A verified (question, SQL) pair for the same database, shown to the model as a hint."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    sql: str = Field(min_length=1, max_length=4000)

    _tokens = field_validator("question", "sql")(reject_control_tokens)


class GenerateRequest(_Strict):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    database: DatabaseInfo
    adapter: str | None = Field(default=None, min_length=1, max_length=64)
    prompt_format: str | None = Field(default=None, min_length=1, max_length=64)
    max_new_tokens: int | None = Field(default=None, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    previous: PreviousAttempt | None = None
    context: PriorTurn | None = None
    examples: list[Example] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    # Notes for this question, shown after the schema: glossary entries, the columns whose
    # values the question names ("'Aberdeen' is a value of airports.City").
    hints: list[str] = Field(default_factory=list, max_length=MAX_HINTS)
    # Extra candidates sampled on the same prompt beside the greedy answer (0: greedy only).
    samples: int = Field(default=0, ge=0, le=MAX_SAMPLES)
    temperature: float = Field(default=0.7, gt=0.0, le=2.0)

    _tokens = field_validator("question", "adapter", "prompt_format")(reject_control_tokens)

    @field_validator("hints")
    @classmethod
    def _hints(cls, value: list[str]) -> list[str]:
        for hint in value:
            if not hint.strip() or len(hint) > MAX_HINT_CHARS:
                raise ValueError(f"a hint must be 1 to {MAX_HINT_CHARS} characters")
            reject_control_tokens(hint)
        return value

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class GenerateResponse(BaseModel):
    sql: str  # the greedy answer
    candidates: list[str] = Field(default_factory=list)  # the sampled ones (``samples``), in order
    raw_output: str
    adapter: str | None
    prompt_format: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    queue_ms: float
    cold_start: bool


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "loading"]
    model: str | None = None
    adapters: list[str] = Field(default_factory=list)
