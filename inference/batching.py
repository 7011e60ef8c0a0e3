"""Dynamic batching: concurrent requests grouped into one ``generate`` call.

A batch closes when it holds ``max_batch_size`` requests or ``max_wait_s`` has passed
since its first request. Requests that need different ``max_new_tokens`` go to separate
calls; different adapters share a call (the engine mixes adapters in one batch).
Greedy decoding with left padding and an attention mask makes each answer independent
of what else was in its batch (tests compare batched and unbatched output).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from inference.engine import Batched, Completion

log = logging.getLogger(__name__)


class Generator(Protocol):
    def generate(
        self,
        prompts: list[str],
        *,
        adapters: list[str | None],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[Completion]: ...


@runtime_checkable
class SelfBatching(Protocol):
    """An engine that schedules its own batches, letting new prompts join running ones
    (llama.cpp's continuous batching)."""

    batches_run: int

    def submit(
        self, prompt: str, *, adapter: str | None, max_new_tokens: int
    ) -> concurrent.futures.Future[Batched]: ...

    def submit_samples(
        self, prompt: str, *, adapter: str | None, max_new_tokens: int, n: int, temperature: float, seed: int = 0
    ) -> list[concurrent.futures.Future[Batched]]: ...


class Scheduler(Protocol):
    @property
    def batches_run(self) -> int: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, prompt: str, *, adapter: str | None, max_new_tokens: int) -> Batched: ...

    async def submit_samples(
        self, prompt: str, *, adapter: str | None, max_new_tokens: int, n: int, temperature: float, seed: int = 0
    ) -> list[Batched]:
        """The greedy completion, then ``n`` sampled at ``temperature``, for one prompt."""
        ...


def scheduler_for(engine: Generator | SelfBatching, *, max_batch_size: int, max_wait_s: float) -> Scheduler:
    """The engine's own scheduler when it has one, otherwise a ``Batcher`` around it."""
    if isinstance(engine, SelfBatching):
        return EngineScheduler(engine)
    return Batcher(engine=engine, max_batch_size=max_batch_size, max_wait_s=max_wait_s)


class EngineScheduler:
    """``Batcher``'s interface over a self-batching engine: nothing to collect here."""

    def __init__(self, engine: SelfBatching) -> None:
        self._engine = engine

    @property
    def batches_run(self) -> int:
        return self._engine.batches_run

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def submit(self, prompt: str, *, adapter: str | None, max_new_tokens: int) -> Batched:
        future = self._engine.submit(prompt, adapter=adapter, max_new_tokens=max_new_tokens)
        return await asyncio.wrap_future(future)

    async def submit_samples(
        self, prompt: str, *, adapter: str | None, max_new_tokens: int, n: int, temperature: float, seed: int = 0
    ) -> list[Batched]:
        futures = self._engine.submit_samples(
            prompt, adapter=adapter, max_new_tokens=max_new_tokens, n=n, temperature=temperature, seed=seed
        )
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))


@dataclass
class _Pending:
    prompt: str
    adapter: str | None
    max_new_tokens: int
    future: asyncio.Future[Batched]
    enqueued: float = field(default_factory=time.perf_counter)
    temperature: float = 0.0
    seed: int = 0


class Batcher:
    def __init__(
        self,
        *,
        engine: Generator,
        max_batch_size: int = 8,
        max_wait_s: float = 0.015,
    ) -> None:
        self._engine = engine
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches_run = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, prompt: str, *, adapter: str | None, max_new_tokens: int) -> Batched:
        return await self._submit(_Pending(prompt, adapter, max_new_tokens, self._future()))

    async def submit_samples(
        self, prompt: str, *, adapter: str | None, max_new_tokens: int, n: int, temperature: float, seed: int = 0
    ) -> list[Batched]:
        """The samples share one sampled ``generate`` call (a batch of their own)."""
        greedy = _Pending(prompt, adapter, max_new_tokens, self._future())
        sampled = [
            _Pending(prompt, adapter, max_new_tokens, self._future(), temperature=temperature, seed=seed)
            for _ in range(n)
        ]
        return list(await asyncio.gather(*(self._submit(p) for p in (greedy, *sampled))))

    def _future(self) -> asyncio.Future[Batched]:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, pending: _Pending) -> Batched:
        self.start()
        await self._queue.put(pending)
        return await pending.future

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            for group in self._groups(batch):
                await self._generate(group)

    async def _collect(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self._max_wait_s
        while len(batch) < self._max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                while len(batch) < self._max_batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [p for p in batch if not p.future.cancelled()]

    def _groups(self, batch: list[_Pending]) -> list[list[_Pending]]:
        # Adapters mix in one call (peft's adapter_names); lengths and sampling do not.
        groups: dict[tuple[int, float, int], list[_Pending]] = defaultdict(list)
        for pending in batch:
            groups[(pending.max_new_tokens, pending.temperature, pending.seed)].append(pending)
        return list(groups.values())

    async def _generate(self, group: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            completions = await asyncio.to_thread(
                self._engine.generate,
                [p.prompt for p in group],
                adapters=[p.adapter for p in group],
                max_new_tokens=group[0].max_new_tokens,
                temperature=group[0].temperature,
                seed=group[0].seed,
            )
        except Exception as exc:
            log.exception("generation failed", extra={"fields": {"batch_size": len(group)}})
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        self.batches_run += 1
        for pending, completion in zip(group, completions, strict=True):
            if not pending.future.done():
                queue_ms = (started - pending.enqueued) * 1000
                pending.future.set_result(Batched(completion=completion, queue_ms=queue_ms, batch_size=len(group)))
