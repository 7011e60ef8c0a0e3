"""The bot's inference client on Modal: generation is spawned on the GPU class.

The bot's container acknowledges Slack and Teams at once (the answer is produced in a
background task), so no acknowledgement waits on a GPU. The answer itself is a spawned call:
if it has not returned after ``notice_after_s`` (a GPU container is most likely starting),
the client raises ``WorkerColdStarting``; the assistant tells the user and asks again, and the
second ask waits on the *same* call rather than starting another one.

Errors are the inference client's own (``inference.client``), so the bot cannot tell this
backend from the HTTP worker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI

from chat2sql.settings import Settings
from deploy.gpu_service import GpuReply
from inference.client import (
    WorkerColdStarting,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
    error_for,
)
from inference.protocol import GenerateRequest, GenerateResponse

Clock = Callable[[], float]


class PendingCall(Protocol):
    """A spawned GPU call (``modal.FunctionCall`` behind ``ModalCall``)."""

    async def get(self, timeout_s: float) -> dict[str, Any]:
        """The reply; raises the builtin ``TimeoutError`` while it is still running."""
        ...


Spawn = Callable[[dict[str, Any]], Awaitable[PendingCall]]


@dataclass
class _Pending:
    call: PendingCall
    started: float
    asked: int = field(default=0)


class ModalInferenceClient:
    def __init__(
        self,
        *,
        spawn: Spawn,
        notice_after_s: float,
        timeout_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._spawn = spawn
        self._notice_after_s = notice_after_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._pending: dict[str, _Pending] = {}

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        now = self._clock()
        self._forget_expired(now)
        key = request.model_dump_json()
        pending = self._pending.get(key)
        if pending is None:
            try:
                call = await self._spawn(request.model_dump(mode="json"))
            except WorkerError:
                raise
            except Exception:
                raise WorkerUnavailable(reason="spawn_failed", attempts=1) from None
            pending = self._pending[key] = _Pending(call=call, started=now)
        first = pending.asked == 0
        pending.asked += 1
        left = self._timeout_s - (now - pending.started)
        wait = min(self._notice_after_s, left) if first else left
        try:
            reply = await pending.call.get(max(wait, 0.0))
        except TimeoutError:
            if first and left > self._notice_after_s:
                raise WorkerColdStarting(retry_after_s=None) from None
            self._pending.pop(key, None)
            raise WorkerTimeout(timeout_s=self._timeout_s) from None
        except WorkerError:
            self._pending.pop(key, None)
            raise
        except Exception:
            self._pending.pop(key, None)
            raise WorkerUnavailable(reason="remote_failed", attempts=1) from None
        self._pending.pop(key, None)
        return _response(reply)

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, p in self._pending.items() if now - p.started > self._timeout_s]:
            del self._pending[key]

    async def close(self) -> None:
        self._pending.clear()


def _response(reply: dict[str, Any]) -> GenerateResponse:
    try:
        parsed = GpuReply.model_validate(reply)
    except Exception:
        raise WorkerUnavailable(reason="bad_response", attempts=1) from None
    if parsed.response is not None:
        return parsed.response
    if parsed.error is None:
        raise WorkerUnavailable(reason="bad_response", attempts=1)
    raise error_for(parsed.error.code, parsed.error.message)  # the worker's codes, as over HTTP


class ModalCall:
    """``PendingCall`` over a ``modal.FunctionCall``: Modal's errors become the client's."""

    def __init__(self, call: Any, *, timeout_s: float) -> None:
        self._call = call
        self._timeout_s = timeout_s

    async def get(self, timeout_s: float) -> dict[str, Any]:
        import modal.exception

        try:
            result: dict[str, Any] = await self._call.get.aio(timeout=timeout_s)
        except TimeoutError:
            raise  # still running
        except modal.exception.FunctionTimeoutError:
            raise WorkerTimeout(timeout_s=self._timeout_s) from None
        except modal.exception.Error:
            raise WorkerUnavailable(reason="modal_error", attempts=1) from None
        return result


def modal_spawn(method: Any, *, timeout_s: float) -> Spawn:
    """``Spawn`` for a Modal method (``Inference().generate``)."""

    async def spawn(payload: dict[str, Any]) -> PendingCall:
        return ModalCall(await method.spawn.aio(payload), timeout_s=timeout_s)

    return spawn


def build_bot_app(settings: Settings, *, spawn: Spawn, notice_after_s: float, timeout_s: float) -> FastAPI:
    """The chat server (``bot.server``) with generation handed to the GPU class."""
    from bot.server import build_app
    from bot.wiring import build_assistant

    client = ModalInferenceClient(spawn=spawn, notice_after_s=notice_after_s, timeout_s=timeout_s)
    return build_app(settings, assistant=build_assistant(settings, client=client))
