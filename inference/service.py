"""The worker's request handling, free of HTTP: prompt building, batching, cleanup, metrics.

``Worker`` owns the engine's lifecycle: the model loads in the background after start-up
(``/readyz`` turns ready when it is in memory) and adapters load by name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chat2sql import messages
from chat2sql.errors import UserFacingError
from inference.batching import Scheduler, scheduler_for
from inference.cleanup import extract_sql
from inference.engine import GenerationEngine
from inference.prompts import get_format, prompt_for
from inference.protocol import GenerateRequest, GenerateResponse

log = logging.getLogger(__name__)


class ModelLoading(UserFacingError):
    @property
    def message(self) -> str:
        return messages.MODEL_STILL_LOADING


class ModelFailed(UserFacingError):
    @property
    def message(self) -> str:
        return messages.MODEL_LOAD_FAILED


class UnknownAdapter(UserFacingError):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name, self.known = name, known

    @property
    def message(self) -> str:
        return messages.unknown_adapter(self.name, self.known)


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    default_adapter: str | None = None
    default_prompt_format: str = "schema"
    adapter_formats: dict[str, str] | None = None
    max_new_tokens: int = 128
    max_input_tokens: int = 2048
    batch_max_size: int = 8
    batch_max_wait_s: float = 0.015
    cold_start_wait_s: float = 0.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("chat2sql_worker_requests", "Requests by outcome", ["outcome"], registry=self.registry)
        self.latency = Histogram(
            "chat2sql_worker_latency_seconds",
            "End-to-end generate latency",
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60),
        )
        self.queue = Histogram("chat2sql_worker_queue_seconds", "Time waiting for a batch", registry=self.registry)
        self.tokens = Counter("chat2sql_worker_tokens", "Tokens processed", ["kind"], registry=self.registry)
        self.batch_size = Histogram(
            "chat2sql_worker_batch_size",
            "Requests per generate call",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32),
        )
        self.cold_starts = Counter(
            "chat2sql_worker_cold_starts", "Requests that waited for the model", registry=self.registry
        )
        self.ready = Gauge("chat2sql_worker_model_ready", "1 once the model is loaded", registry=self.registry)
        self.load_seconds = Gauge("chat2sql_worker_model_load_seconds", "Model load time", registry=self.registry)


class Worker:
    def __init__(self, *, load_engine: Callable[[], GenerationEngine], options: WorkerOptions) -> None:
        self._load_engine = load_engine
        self.options = options
        self.metrics = Metrics()
        self.engine: GenerationEngine | None = None
        self.batcher: Scheduler | None = None
        self.load_error: BaseException | None = None
        self._loaded = asyncio.Event()
        self._load_task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.engine is not None

    def start(self) -> None:
        if self._load_task is None:
            self._load_task = asyncio.create_task(self._load(), name="model-load")

    async def stop(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        if self.batcher is not None:
            await self.batcher.stop()
        close = getattr(self.engine, "close", None)  # the llama.cpp engine's thread and memory
        if close is not None:
            await asyncio.to_thread(close)

    async def wait_ready(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout_s)
        except TimeoutError:
            return False
        return self.ready

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            engine = await asyncio.to_thread(self._load_engine)
        except Exception as exc:
            log.exception("model load failed")
            self.load_error = exc
            self._loaded.set()
            return
        self.metrics.load_seconds.set(time.perf_counter() - started)
        self.engine = engine
        self.batcher = scheduler_for(
            engine, max_batch_size=self.options.batch_max_size, max_wait_s=self.options.batch_max_wait_s
        )
        self.batcher.start()
        self.metrics.ready.set(1)
        self._loaded.set()

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        started = time.perf_counter()
        cold = False
        if not self.ready:
            if self.load_error is not None:
                raise ModelFailed()
            if self.options.cold_start_wait_s <= 0 or not await self.wait_ready(self.options.cold_start_wait_s):
                raise ModelFailed() if self.load_error is not None else ModelLoading()
            cold = True
            self.metrics.cold_starts.inc()
        engine, batcher = self.engine, self.batcher
        assert engine is not None and batcher is not None
        adapter = request.adapter or self.options.default_adapter
        if adapter is not None and adapter not in engine.adapters:
            raise UnknownAdapter(adapter, engine.adapters)
        format_name = (
            request.prompt_format
            or (self.options.adapter_formats or {}).get(adapter or "")
            or self.options.default_prompt_format
        )
        fmt = get_format(format_name)
        # Tokenizing a schema of up to 200,000 characters takes tens of milliseconds: in a
        # thread, so that the event loop (health checks, other requests) keeps answering.
        prompt = await asyncio.to_thread(
            prompt_for, request, fmt.name, max_tokens=self.options.max_input_tokens, count_tokens=engine.count_tokens
        )
        max_new = request.max_new_tokens or self.options.max_new_tokens
        if request.samples:
            results = await batcher.submit_samples(
                prompt, adapter=adapter, max_new_tokens=max_new, n=request.samples, temperature=request.temperature
            )
        else:
            results = [await batcher.submit(prompt, adapter=adapter, max_new_tokens=max_new)]
        result, completion = results[0], results[0].completion
        completion_tokens = sum(r.completion.completion_tokens for r in results)
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.latency.observe(latency_ms / 1000)
        self.metrics.queue.observe(result.queue_ms / 1000)
        self.metrics.batch_size.observe(result.batch_size)
        self.metrics.tokens.labels("prompt").inc(completion.prompt_tokens)  # the prompt is read once
        self.metrics.tokens.labels("completion").inc(completion_tokens)
        self.metrics.tokens.labels("cached").inc(completion.cached_tokens)
        return GenerateResponse(
            sql=extract_sql(completion.text),
            candidates=[extract_sql(r.completion.text) for r in results[1:]],
            raw_output=completion.text,
            adapter=adapter,
            prompt_format=fmt.id,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=round(latency_ms, 2),
            queue_ms=round(result.queue_ms, 2),
            cold_start=cold,
        )
