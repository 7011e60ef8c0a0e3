"""What the Modal worker classes run, free of Modal: one ``Worker`` around an engine loaded once.

Both classes use it: the GPU class (transformers) and the CPU class (llama.cpp, or
transformers on CPU), with the settings of their profile. A container's lifecycle splits in
two so a memory snapshot captures the slow part: ``prepare()`` (imports, downloads at pinned
revisions, GGUF conversion or joining: all onto the Volume) runs before the snapshot;
``load()`` (weights onto the GPU, or the GGUF into llama.cpp) after it, unless GPU snapshots are
on. ``generate`` takes and returns plain dicts (``GpuReply``): every failure is a code and a
sentence safe to show, never a pickled exception; the codes are the worker's HTTP API's
(``inference.client.errors.WORKER_ERRORS``), so the Modal client reads them back the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from chat2sql import messages
from chat2sql.errors import UserFacingError
from chat2sql.settings import Settings
from inference.client.errors import GENERATION_FAILED, code_for
from inference.engine import GenerationEngine
from inference.protocol import ErrorDetail, GenerateRequest, GenerateResponse
from inference.service import Worker
from inference.sources import gguf_file, parse_source, resolve
from inference.wiring import engine_loader, worker_options

log = logging.getLogger(__name__)

LOAD_WAIT_S = 600.0


class GpuReply(BaseModel):
    """The GPU method's answer: a response or an error (codes as in the worker's HTTP API)."""

    response: GenerateResponse | None = None
    error: ErrorDetail | None = None


def _error(code: str, message: str) -> dict[str, Any]:
    return GpuReply(error=ErrorDetail(code=code, message=message)).model_dump(mode="json")


def _generation_failed() -> dict[str, Any]:
    """Inside an ``except``: a failure no code names is logged and answered ``generation_failed``."""
    log.exception("generation failed")
    return _error(GENERATION_FAILED, messages.GENERATION_FAILED)


class GpuService:
    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self.engine: GenerationEngine | None = None
        self._worker: Worker | None = None

    def prepare(self) -> list[str]:
        """Resolve every source once (download at its pinned revision, convert, or for
        llama.cpp join the embedded GGUF) and import the model libraries; returns the local
        paths. Idempotent: a second call reads the cache."""
        token = self.settings.hf_token.get_secret_value() if self.settings.hf_token else None
        cache = self.settings.model_cache_dir
        sources = [parse_source(s) for s in (self.settings.model, *(a.source for a in self.settings.adapters.values()))]
        if self.settings.engine == "llamacpp":  # the CPU profile names its engine
            import llama_cpp  # noqa: F401  (into the snapshot; a missing build fails here, at start)

            # The GGUF files as llama.cpp reads them (the embedded model joined once, no conversion).
            return [str(gguf_file(s, cache_dir=cache) or s) for s in sources]
        import peft  # noqa: F401  (imported here so the snapshot holds them)
        import torch  # noqa: F401
        import transformers  # noqa: F401

        return [str(resolve(s, cache_dir=cache, hf_token=token)) for s in sources]

    def load(self) -> None:
        if self.engine is None:
            self.engine = engine_loader(self.settings)()

    def health(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "status": "ok" if engine is not None else "loading",
            "model": self.settings.model,
            "engine": type(engine).__name__ if engine is not None else None,
            "device": engine.device if engine is not None else None,
            "adapters": list(engine.adapters) if engine is not None else [],
        }

    def _started_worker(self) -> Worker:
        if self._worker is None:  # no await between the check and the assignment
            engine = self.engine

            def loaded() -> GenerationEngine:
                if engine is None:
                    raise RuntimeError("the engine was not loaded at container start")
                return engine

            self._worker = Worker(load_engine=loaded, options=worker_options(self.settings))
            self._worker.start()
        return self._worker

    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            request = GenerateRequest.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "request"
            return _error(
                "invalid_request", f"{where}: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}"
            )
        worker = self._started_worker()
        await worker.wait_ready(LOAD_WAIT_S)
        try:
            response = await worker.generate(request)
        except UserFacingError as exc:
            code = code_for(exc)
            return _generation_failed() if code is None else _error(code, exc.message)
        except Exception:
            return _generation_failed()
        return GpuReply(response=response).model_dump(mode="json")

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.stop()
