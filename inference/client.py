"""The async client the bot uses to get SQL for a question.

One Protocol, two implementations: ``WorkerClient`` talks to our own worker
(``POST /v1/generate``: prompt, adapter and cleanup happen there), ``OpenAICompatibleClient``
to any OpenAI-compatible server (vLLM with LoRA modules, llama.cpp, Ollama) and builds the
prompt and cleans the output itself. Both share one retry loop, so a failure means the same
thing whichever server is behind it:

- connection refused or reset: retried; while the worker has been unreachable for less than
  ``cold_start_grace_s`` this is a cold start (scale-to-zero GPUs take 30–60 s), after that
  the worker is unavailable;
- 503 with code ``model_loading``: a cold start at once (retrying now only waits on the load);
- any other 5xx: retried, then unavailable;
- 429: overloaded, with the server's Retry-After; never retried (retrying adds load);
- any other 4xx: rejected, never retried (the same request fails the same way again);
- a read timeout: not retried (the next try would most likely time out too, at double cost).

Every error has a ``message`` a chat user may see; it never holds a URL, a key or the text of
an exception.
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
from typing import Any, Literal, Protocol, TypeVar, assert_never

import httpx
from pydantic import BaseModel, Field, ValidationError

from chat2sql.errors import UserFacingError
from inference.cleanup import extract_sql
from inference.prompts import DEFAULT_FORMAT, get_format, prompt_for
from inference.protocol import ErrorResponse, GenerateRequest, GenerateResponse

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

TIMEOUT_S = 60.0  # read timeout: a whole generation, cold start excluded (that answers 503)
CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_NEW_TOKENS = 128  # the seed's decoding budget
STOP = ("<|im_end|>", "<|endoftext|>")  # Qwen's two stop tokens; the seed passed only one
MODEL_LOADING = "model_loading"
MAX_DETAIL_CHARS = 300

_M = TypeVar("_M", bound=BaseModel)


# --- errors -----------------------------------------------------------------------------


class WorkerError(UserFacingError):
    """Root of the client's errors; ``message`` is what a chat user may be shown."""

    @property
    def message(self) -> str:
        return "The model service failed; please try again later."


class WorkerColdStarting(WorkerError):
    """The model is still loading: the bot says so and answers once it is up."""

    def __init__(self, *, retry_after_s: float | None = None) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s

    @property
    def message(self) -> str:
        return "The model is warming up; your answer will follow in a minute or so."


class WorkerOverloaded(WorkerError):
    def __init__(self, *, retry_after_s: float | None) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s

    @property
    def message(self) -> str:
        if self.retry_after_s is None:
            return "The model is busy right now; please try again in a moment."
        return f"The model is busy right now; please try again in {math.ceil(self.retry_after_s)} s."


class WorkerUnavailable(WorkerError):
    """Retries are spent; ``reason`` is for logs (``connection``, ``http_502``, ``bad_response``)."""

    def __init__(self, *, reason: str, attempts: int) -> None:
        super().__init__(reason, attempts)
        self.reason = reason
        self.attempts = attempts

    @property
    def message(self) -> str:
        return "The model service is not available right now; please try again later."


class WorkerTimeout(WorkerError):
    def __init__(self, *, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.timeout_s = timeout_s

    @property
    def message(self) -> str:
        return f"The model did not answer within {self.timeout_s:g} s; please try again."


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
        if self.detail:
            return f"The model service refused the request: {self.detail}"
        if self.status in (401, 403):
            return "The model service refused our credentials; ask an admin to check the API key."
        if self.status == 404:
            return "The model service does not know the model or adapter that was asked for."
        return "The model service could not process the request."


# --- the shared HTTP loop ---------------------------------------------------------------


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


class _Http:
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
        if status == 503 and code == MODEL_LOADING:
            raise WorkerColdStarting(retry_after_s=_retry_after_s(response.headers.get("Retry-After")))
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


def _parse(model: type[_M], payload: Any) -> _M:
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


# --- clients ----------------------------------------------------------------------------


class InferenceClient(Protocol):
    async def generate(self, request: GenerateRequest) -> GenerateResponse: ...

    async def close(self) -> None: ...


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
        self._http = _Http(
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
        return _parse(GenerateResponse, payload)

    async def close(self) -> None:
        await self._http.aclose()


class _Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Choice(BaseModel):
    text: str


class _Completion(BaseModel):
    """The part of an OpenAI ``/v1/completions`` answer we read; the rest is ignored."""

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


class OpenAICompatibleClient:
    """Any OpenAI-compatible server. The prompt is built here, byte for byte what our worker
    would build, and sent as a plain completion (no chat template on the server's side).

    ``model`` is asked for when the request names no adapter (vLLM serves each LoRA module
    under its own model name). ``latency_ms`` is measured here, retries included.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout_s: float = TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._model = model
        self._http = _Http(
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            retry=retry,
            sleep=sleep,
            clock=clock,
            trust_error_messages=False,
        )

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        format_name = request.prompt_format or DEFAULT_FORMAT
        fmt = get_format(format_name)
        prompt = prompt_for(request, format_name)
        body = {
            "model": request.adapter or self._model,
            "prompt": prompt,
            "max_tokens": request.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            "temperature": 0,
            "stop": list(STOP),
        }
        started = time.perf_counter()
        completion = _parse(_Completion, await self._http.post_json("/v1/completions", body))
        latency_ms = (time.perf_counter() - started) * 1000
        text = completion.choices[0].text
        usage = completion.usage or _Usage()
        return GenerateResponse(
            sql=extract_sql(text),
            raw_output=text,
            adapter=request.adapter,
            prompt_format=fmt.id,
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
            latency_ms=latency_ms,
            queue_ms=0.0,
            cold_start=False,
        )

    async def close(self) -> None:
        await self._http.aclose()


def make_client(
    *,
    kind: Literal["worker", "openai"],
    base_url: str,
    api_key: str | None,
    model: str | None = None,
    timeout_s: float = TIMEOUT_S,
) -> InferenceClient:
    """The client for the configured server. For ``worker`` the key is required and ``model``
    is the default adapter; for ``openai`` the key is optional and ``model`` is required."""
    match kind:
        case "worker":
            if not api_key:
                raise ValueError("the worker needs an API key")
            return WorkerClient(base_url=base_url, api_key=api_key, default_adapter=model, timeout_s=timeout_s)
        case "openai":
            if not model:
                raise ValueError("an OpenAI-compatible server needs a model name")
            return OpenAICompatibleClient(base_url=base_url, api_key=api_key, model=model, timeout_s=timeout_s)
    assert_never(kind)
