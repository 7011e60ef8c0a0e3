"""The worker's HTTP API (FastAPI): ``python -m inference serve``.

- ``POST /v1/generate``: API key in ``Authorization: Bearer …`` only (stored hashed,
  compared in constant time) → 401; per-key token buckets by tier → 429 with
  ``Retry-After``; body validated before the model is touched → 422; model not loaded
  → 503 ``model_loading`` with ``Retry-After``.
- ``GET /healthz`` (process up), ``GET /readyz`` (model loaded), ``GET /metrics``.

Every error is JSON ``{"error": {"code", "message"}}`` with a sentence safe to show.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chat2sql.log import request_id
from chat2sql.ratelimit import TIERS, RateLimiter, RateLimiterUnavailable
from inference.prompts import PromptTooLong, UnknownPromptFormat
from inference.protocol import ErrorDetail, ErrorResponse, GenerateRequest, GenerateResponse, Health
from inference.service import ModelFailed, ModelLoading, UnknownAdapter, Worker

log = logging.getLogger(__name__)

LOADING_RETRY_AFTER_S = 10


class KeyInfoLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def tier(self) -> str: ...


class Authenticator(Protocol):
    def authenticate(self, presented: str) -> KeyInfoLike | None: ...


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def build_app(*, worker: Worker, keys: Authenticator, limiter: RateLimiter) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        yield
        await worker.stop()
        await limiter.close()

    app = FastAPI(title="chat2sql worker", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        worker.metrics.requests.labels(exc.code).inc()
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.error("generation failed", exc_info=exc)
        worker.metrics.requests.labels("generation_failed").inc()
        return _error(500, "generation_failed", "The model failed to generate an answer; please retry.")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        worker.metrics.requests.labels("invalid_request").inc()
        return _error(422, "invalid_request", _validation_message(exc.errors()))

    async def authenticated(request: Request) -> KeyInfoLike:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "unauthorized",
                "Send the API key as 'Authorization: Bearer <key>'.",
                {"WWW-Authenticate": "Bearer"},
            )
        info = await asyncio.to_thread(keys.authenticate, token.strip())
        if info is None:
            raise ApiError(401, "unauthorized", "The API key is not valid.", {"WWW-Authenticate": "Bearer"})
        try:
            decision = await limiter.acquire(f"key:{info.name}", TIERS[info.tier])
        except RateLimiterUnavailable:
            raise ApiError(
                503,
                "rate_limiter_unavailable",
                "Rate limiting is unavailable; retry shortly.",
                {"Retry-After": "5"},
            ) from None
        if not decision.allowed:
            retry = max(1, math.ceil(decision.retry_after_s))
            raise ApiError(
                429,
                "rate_limited",
                f"Too many requests for this key; retry in {retry} s.",
                {"Retry-After": str(retry)},
            )
        return info

    @app.post("/v1/generate", response_model=GenerateResponse)
    async def generate(
        body: GenerateRequest,
        # A default, not Annotated[…]: the dependency is a closure that string annotations
        # (from __future__ import annotations) could not name.
        key: KeyInfoLike = Depends(authenticated),  # noqa: B008
    ) -> GenerateResponse:
        token = request_id.set(uuid.uuid4().hex[:16])
        try:
            response = await worker.generate(body)
        except ModelLoading as exc:
            raise ApiError(503, "model_loading", exc.message, {"Retry-After": str(LOADING_RETRY_AFTER_S)}) from None
        except ModelFailed as exc:
            raise ApiError(503, "model_failed", exc.message) from None
        except (UnknownAdapter, UnknownPromptFormat) as exc:
            raise ApiError(422, "invalid_request", exc.message) from None
        except PromptTooLong as exc:
            raise ApiError(422, "prompt_too_long", exc.message) from None
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
            return _error(503, "model_failed", "The model failed to load.")
        return _error(503, "model_loading", "The model is still loading.", {"Retry-After": str(LOADING_RETRY_AFTER_S)})

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
