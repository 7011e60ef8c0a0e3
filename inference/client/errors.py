"""What every inference client promises: the ``InferenceClient`` protocol and its errors.

Whichever backend answers (our worker over HTTP, an OpenAI-compatible server, the engine in
this process, a Modal GPU call), a failure is one of these errors and means the same thing:

- ``WorkerColdStarting``: the model is still loading; the bot says so and answers later;
- ``WorkerOverloaded``: too many requests, with the server's Retry-After when it sent one;
- ``WorkerUnavailable``: retries are spent, or the model cannot serve at all;
- ``WorkerTimeout``: no answer in time;
- ``WorkerRejected``: the request itself was refused (the same request fails the same way).

``WORKER_ERRORS`` is the one table of the worker's error codes (the ``code`` of its JSON error
body, ``{"error": {"code", "message"}}``): the HTTP status the worker answers with, the
worker's exceptions the code stands for, and the client error it becomes. The worker
(``inference.server``, ``deploy.gpu_service``) picks its codes from it with ``code_for``, the
clients turn a code back into an error with ``error_for``.

Every error has a ``message`` a chat user may see; it never holds a URL, a key or the text of
an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chat2sql import messages
from chat2sql.errors import UserFacingError
from inference.prompts import PromptTooLong, UnknownPromptFormat
from inference.protocol import GenerateRequest, GenerateResponse
from inference.service import ModelFailed, ModelLoading, UnknownAdapter


class InferenceClient(Protocol):
    async def generate(self, request: GenerateRequest) -> GenerateResponse: ...

    async def close(self) -> None: ...


# --- errors -----------------------------------------------------------------------------


class WorkerError(UserFacingError):
    """Root of the client's errors; ``message`` is what a chat user may be shown."""

    @property
    def message(self) -> str:
        return messages.MODEL_SERVICE_FAILED


class WorkerColdStarting(WorkerError):
    """The model is still loading: the bot says so and answers once it is up."""

    def __init__(self, *, retry_after_s: float | None = None) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s

    @property
    def message(self) -> str:
        return messages.MODEL_WARMING_UP


class WorkerOverloaded(WorkerError):
    def __init__(self, *, retry_after_s: float | None) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s

    @property
    def message(self) -> str:
        return messages.model_busy(self.retry_after_s)


class WorkerUnavailable(WorkerError):
    """Retries are spent; ``reason`` is for logs (``connection``, ``http_502``, ``bad_response``)."""

    def __init__(self, *, reason: str, attempts: int) -> None:
        super().__init__(reason, attempts)
        self.reason = reason
        self.attempts = attempts

    @property
    def message(self) -> str:
        return messages.MODEL_SERVICE_UNAVAILABLE


class WorkerTimeout(WorkerError):
    def __init__(self, *, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.timeout_s = timeout_s

    @property
    def message(self) -> str:
        return messages.model_timeout(self.timeout_s)


class WorkerRejected(WorkerError):
    """A 4xx other than 429. ``detail`` is set only when it comes from our own worker, whose
    messages are written to be shown; a third-party server's text is never passed on."""

    def __init__(self, *, status: int, code: str, detail: str | None) -> None:
        super().__init__(status, code, detail)
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def message(self) -> str:
        return messages.model_refused(self.status, self.detail)


# --- the worker's error codes -----------------------------------------------------------


@dataclass(frozen=True)
class WorkerCode:
    """One code of the worker's JSON errors: the HTTP status it answers with, the client error
    it becomes, and the worker's exceptions it stands for (none: it is raised by name)."""

    status: int
    error: type[WorkerError]
    raised_by: tuple[type[UserFacingError], ...] = ()


MODEL_LOADING = "model_loading"
GENERATION_FAILED = "generation_failed"

WORKER_ERRORS: dict[str, WorkerCode] = {
    MODEL_LOADING: WorkerCode(503, WorkerColdStarting, (ModelLoading,)),
    "model_failed": WorkerCode(503, WorkerUnavailable, (ModelFailed,)),
    "invalid_request": WorkerCode(422, WorkerRejected, (UnknownAdapter, UnknownPromptFormat)),
    "prompt_too_long": WorkerCode(422, WorkerRejected, (PromptTooLong,)),
    GENERATION_FAILED: WorkerCode(500, WorkerUnavailable),  # anything else the model raised
    "body_too_large": WorkerCode(413, WorkerRejected),
    "unauthorized": WorkerCode(401, WorkerRejected),
    "rate_limited": WorkerCode(429, WorkerOverloaded),
}


def code_for(exc: BaseException) -> str | None:
    """The code the worker answers ``exc`` with; None when no code names it (the worker then
    answers ``generation_failed``, the in-process client lets it through)."""
    for code, known in WORKER_ERRORS.items():
        if known.raised_by and isinstance(exc, known.raised_by):
            return code
    return None


def error_for(
    code: str,
    detail: str | None = None,
    *,
    status: int | None = None,
    retry_after_s: float | None = None,
    attempts: int = 1,
) -> WorkerError:
    """The client error for the worker's ``code``. ``detail`` is the worker's sentence, shown on a
    rejection only; ``status`` defaults to the table's; a code not in the table is unavailable."""
    known = WORKER_ERRORS.get(code)
    kind = known.error if known is not None else WorkerUnavailable
    if kind is WorkerColdStarting:
        return WorkerColdStarting(retry_after_s=retry_after_s)
    if kind is WorkerOverloaded:
        return WorkerOverloaded(retry_after_s=retry_after_s)
    if kind is WorkerRejected and known is not None:
        return WorkerRejected(status=status or known.status, code=code, detail=detail)
    return WorkerUnavailable(reason=code, attempts=attempts)
