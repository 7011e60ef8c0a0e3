"""The worker's HTTP API (FastAPI): ``python -m inference serve``.

- ``POST /v1/generate``, checked in this order: API key in ``Authorization: Bearer …``
  only (stored hashed, compared in constant time) → 401; per-key token buckets by tier →
  429 with ``Retry-After``; body over ``worker_max_body_bytes`` → 413; body validated
  before the model is touched → 422; model not loaded → 503 ``model_loading`` with
  ``Retry-After``. The body is not read at all before the key is accepted, so a stranger
  cannot make the worker read or parse anything; its size is checked before it is parsed.
- ``GET /healthz`` (process up), ``GET /readyz`` (model loaded), ``GET /metrics``.

Every error is JSON ``{"error": {"code", "message"}}`` with a sentence safe to show; its code and
HTTP status come from ``inference.client.errors.WORKER_ERRORS``, the table the clients read back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat2sql import messages
from chat2sql.errors import UserFacingError
from chat2sql.log import request_id
from chat2sql.ratelimit import RateLimiter
from inference.client.errors import GENERATION_FAILED, MODEL_LOADING, WORKER_ERRORS, code_for
from inference.keys import Authenticator, KeyInfoLike, Refusal, admit
from inference.protocol import ErrorDetail, ErrorResponse, GenerateRequest, GenerateResponse, Health
from inference.service import Worker

log = logging.getLogger(__name__)

LOADING_RETRY_AFTER_S = 10


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _error(
    code: str, message: str, headers: dict[str, str] | None = None, *, status: int | None = None
) -> JSONResponse:
    """The JSON error for ``code``, with the code's status from ``WORKER_ERRORS`` unless ``status``."""
    body = ErrorResponse(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status or WORKER_ERRORS[code].status, headers=headers)


def _retry_later(code: str) -> dict[str, str]:
    """``Retry-After`` for a model that is still loading; no headers for any other code."""
    return {"Retry-After": str(LOADING_RETRY_AFTER_S)} if code == MODEL_LOADING else {}


class BodyTooLarge(UserFacingError):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    @property
    def message(self) -> str:
        return messages.body_too_large(self.limit)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with 413 before it is
    parsed — by its ``Content-Length`` before a byte of it is read, and for a chunked body
    as soon as the bytes received pass the limit.

    The check runs when the app first reads the body, not when the request arrives: what
    reads the body decides the order. ``/v1/generate`` checks the key first, so a bad key is
    a 401 whatever the body, and a route that never reads its body never pays for it.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge as exc:  # the app's handler turns it into a 413; this is the fallback
            if started:
                raise
            await _error("body_too_large", exc.message)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _generate_request(request: Request) -> GenerateRequest:
    """The body of ``/v1/generate``: a dependency after ``authenticated``, so that it is read
    only for an accepted key (FastAPI reads a body parameter before any dependency runs)."""
    raw = await request.body()  # BodyLimit raises BodyTooLarge here
    try:
        return GenerateRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def build_app(*, worker: Worker, keys: Authenticator, limiter: RateLimiter, max_body_bytes: int) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        yield
        await worker.stop()
        await limiter.close()

    app = FastAPI(title="chat2sql worker", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        worker.metrics.requests.labels(exc.code).inc()
        return _error(exc.code, exc.message, exc.headers, status=exc.status)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        worker.metrics.requests.labels("body_too_large").inc()
        return _error("body_too_large", exc.message)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.error("generation failed", exc_info=exc)
        worker.metrics.requests.labels(GENERATION_FAILED).inc()
        return _error(GENERATION_FAILED, messages.GENERATION_FAILED)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        worker.metrics.requests.labels("invalid_request").inc()
        return _error("invalid_request", _validation_message(exc.errors()))

    async def authenticated(request: Request) -> KeyInfoLike:
        admitted = await admit(request.headers.get("authorization", ""), keys, limiter, bucket="key:")
        if isinstance(admitted, Refusal):
            raise ApiError(admitted.status, admitted.code, admitted.message, admitted.headers)
        return admitted

    @app.post("/v1/generate", response_model=GenerateResponse)
    async def generate(
        # Defaults, not Annotated[…]: the dependency is a closure that string annotations
        # (from __future__ import annotations) could not name. Dependencies run in this
        # order: the key is checked before the body is read.
        key: KeyInfoLike = Depends(authenticated),  # noqa: B008
        body: GenerateRequest = Depends(_generate_request),  # noqa: B008
    ) -> GenerateResponse:
        token = request_id.set(uuid.uuid4().hex[:16])
        try:
            response = await worker.generate(body)
        except UserFacingError as exc:
            code = code_for(exc)
            if code is None:
                raise  # answered as generation_failed
            raise ApiError(WORKER_ERRORS[code].status, code, exc.message, _retry_later(code)) from None
        finally:
            request_id.reset(token)
        worker.metrics.requests.labels("ok").inc()
        log.info(
            "generated",
            extra={
                "fields": {
                    "key": key.name,
                    "latency_ms": response.latency_ms,
                    "tokens": response.completion_tokens,
                }
            },
        )
        return response

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(
            status="ok" if worker.ready else "loading",
            model=worker.engine.name if worker.engine else None,
            adapters=list(worker.engine.adapters) if worker.engine else [],
        )

    @app.get("/readyz", response_model=None)
    async def readyz() -> Any:
        if worker.ready:
            return Health(status="ok", model=worker.engine.name if worker.engine else None)
        if worker.load_error is not None:
            return _error("model_failed", "The model failed to load.")
        return _error(MODEL_LOADING, "The model is still loading.", _retry_later(MODEL_LOADING))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(worker.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _validation_message(errors: Any) -> str:
    parts = []
    for err in list(errors)[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts) or "The request body is not valid."
