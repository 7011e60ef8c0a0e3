"""The HTTP loop both HTTP clients share, its retry policy, and ``WorkerClient`` (our worker).

``WorkerClient`` talks to our own worker (``POST /v1/generate``: prompt, adapter and cleanup
happen there); ``OpenAICompatibleClient`` (``inference.client.openai_compatible``) uses the same
loop, so a failure means the same thing whichever server is behind it:

- connection refused or reset: retried; while the worker has been unreachable for less than
  ``cold_start_grace_s`` this is a cold start (scale-to-zero GPUs take 30–60 s), after that
  the worker is unavailable;
- 503 with code ``model_loading``: a cold start at once (retrying now only waits on the load);
- any other 5xx: retried, then unavailable;
- 429: overloaded, with the server's Retry-After; never retried (retrying adds load);
- any other 4xx: rejected, never retried (the same request fails the same way again);
- a read timeout: not retried (the next try would most likely time out too, at double cost).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from inference.client.errors import (
    WORKER_ERRORS,
    WorkerColdStarting,
    WorkerOverloaded,
    WorkerRejected,
    WorkerTimeout,
    WorkerUnavailable,
    error_for,
)
from inference.protocol import ErrorResponse, GenerateRequest, GenerateResponse

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

TIMEOUT_S = 60.0  # read timeout: a whole generation, cold start excluded (that answers 503)
CONNECT_TIMEOUT_S = 5.0
MAX_DETAIL_CHARS = 300

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try before giving up. ``max_attempts`` counts the first try."""

    max_attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    cold_start_grace_s: float = 90.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0 or self.cold_start_grace_s < 0:
            raise ValueError("backoff and grace durations must not be negative")

    def backoff_s(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(max, base·2^(failures-1))], so many bots that failed
        together do not all come back at the same instant."""
        return random.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (failures - 1)))


DEFAULT_RETRY = RetryPolicy()

# The server is not reachable (or dropped us before answering): worth another try.
_CONNECTION_ERRORS = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ConnectTimeout)


class Http:
    """POST JSON, retry what may succeed next time, turn every failure into a typed error.

    The time of the first connection failure is kept across calls and cleared by any HTTP
    answer: that is what tells a worker that is still starting from one that is down.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        retry: RetryPolicy,
        sleep: Sleep,
        clock: Clock,
        trust_error_messages: bool,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
        )
        self._timeout_s = timeout_s
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._trust_error_messages = trust_error_messages
        self._unreachable_since: float | None = None

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        failure = ""
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                response = await self._client.post(path, json=body)
            except _CONNECTION_ERRORS as exc:
                if self._unreachable_since is None:
                    self._unreachable_since = self._clock()
                failure = f"connection:{type(exc).__name__}"
            except httpx.TimeoutException as exc:
                raise WorkerTimeout(timeout_s=self._timeout_s) from exc
            except httpx.TransportError as exc:  # proxy or protocol misconfiguration: no retry helps
                raise WorkerUnavailable(reason=type(exc).__name__, attempts=attempt) from exc
            else:
                self._unreachable_since = None
                if response.is_success:
                    return _json(response, attempt)
                self._raise_unless_retryable(response)
                failure = f"http_{response.status_code}"
            if attempt < self._retry.max_attempts:
                delay_s = self._retry.backoff_s(attempt)
                fields = {"attempt": attempt, "failure": failure, "retry_in_s": round(delay_s, 3)}
                log.warning("inference attempt failed, retrying", extra={"fields": fields})
                await self._sleep(delay_s)
        if failure.startswith("connection") and self._within_grace():
            raise WorkerColdStarting()
        raise WorkerUnavailable(reason=failure, attempts=self._retry.max_attempts)

    def _within_grace(self) -> bool:
        since = self._unreachable_since
        return since is not None and self._clock() - since < self._retry.cold_start_grace_s

    def _raise_unless_retryable(self, response: httpx.Response) -> None:
        status = response.status_code
        code, detail = _error_fields(response)
        known = WORKER_ERRORS.get(code) if code is not None else None
        if code is not None and known is not None and known.error is WorkerColdStarting and status == known.status:
            raise error_for(code, detail, retry_after_s=_retry_after_s(response.headers.get("Retry-After")))
        if status >= 500:
            return
        if status == 429:
            raise WorkerOverloaded(retry_after_s=_retry_after_s(response.headers.get("Retry-After")))
        shown = _one_line(detail) if self._trust_error_messages and detail else None
        raise WorkerRejected(status=status, code=code or f"http_{status}", detail=shown)

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(response: httpx.Response, attempt: int) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise WorkerUnavailable(reason="bad_response", attempts=attempt) from exc


def parse_reply(model: type[_M], payload: Any) -> _M:
    """A success body read as ``model``; anything else is a bad response (unavailable)."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise WorkerUnavailable(reason="bad_response", attempts=1) from exc


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    """(code, message) from our worker's ``ErrorResponse`` or an OpenAI-style error body
    (``{"error": {"message", "type", "code"}}``, vLLM's older flat form, Ollama's string)."""
    try:
        payload = response.json()
    except ValueError:
        return None, None
    try:
        ours = ErrorResponse.model_validate(payload)
    except ValidationError:
        pass
    else:
        return ours.error.code, ours.error.message
    if not isinstance(payload, dict):
        return None, None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return None, error
    if not isinstance(error, dict):
        return None, None
    code = error.get("code")
    code = code if isinstance(code, str) else error.get("type")
    message = error.get("message")
    return (code if isinstance(code, str) else None, message if isinstance(message, str) else None)


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_DETAIL_CHARS else flat[: MAX_DETAIL_CHARS - 1] + "…"


class WorkerClient:
    """Our worker. The key travels only in the Authorization header, never in the body.

    ``default_adapter`` is sent when a request names none; None leaves the choice to the worker.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        default_adapter: str | None = None,
        timeout_s: float = TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._default_adapter = default_adapter
        self._http = Http(
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            retry=retry,
            sleep=sleep,
            clock=clock,
            trust_error_messages=True,
        )

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        if request.adapter is None and self._default_adapter is not None:
            request = request.model_copy(update={"adapter": self._default_adapter})
        payload = await self._http.post_json("/v1/generate", request.model_dump(exclude_none=True))
        return parse_reply(GenerateResponse, payload)

    async def close(self) -> None:
        await self._http.aclose()
