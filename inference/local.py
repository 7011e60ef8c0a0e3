"""The in-process backend: the bot runs the worker's own engine without HTTP.

The embedded default (`CHAT2SQL_INFERENCE=local`): `make demo` and `python -m bot chat`
answer with the offline model on this machine. It speaks the same InferenceClient
protocol as the HTTP clients, with the same errors: a worker exception becomes the client
error its code stands for (``inference.client.errors.WORKER_ERRORS``), as it would over HTTP.
"""

from __future__ import annotations

from chat2sql.errors import UserFacingError
from inference.client.errors import WorkerColdStarting, code_for, error_for
from inference.protocol import GenerateRequest, GenerateResponse
from inference.service import Worker


class LocalInferenceClient:
    def __init__(self, *, worker: Worker, load_timeout_s: float = 600.0) -> None:
        self._worker = worker
        self._load_timeout_s = load_timeout_s

    def start(self) -> None:
        """Start loading the model in the background (inside the running event loop); idempotent."""
        self._worker.start()

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        self._worker.start()
        loaded = self._worker.ready or await self._worker.wait_ready(self._load_timeout_s)
        if not loaded and self._worker.load_error is None:
            raise WorkerColdStarting(retry_after_s=None)
        try:
            return await self._worker.generate(request)
        except UserFacingError as exc:
            code = code_for(exc)
            if code is None:
                raise
            raise error_for(code, exc.message) from None

    async def close(self) -> None:
        await self._worker.stop()
