"""Scripted inference clients: instant engines whose answers come from the test."""

from __future__ import annotations

from collections.abc import Callable

from inference.protocol import GenerateRequest, GenerateResponse


class ScriptedClient:
    """An instant engine: answers come from a script (a list or a function of the request)."""

    def __init__(self, answers: list[str | Exception] | Callable[[GenerateRequest], str]) -> None:
        self.answers = answers
        self.requests: list[GenerateRequest] = []

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        self.requests.append(request)
        if callable(self.answers):
            sql = self.answers(request)
        else:
            item = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if isinstance(item, Exception):
                raise item
            sql = item
        return GenerateResponse(
            sql=sql,
            raw_output=sql,
            adapter=None,
            prompt_format="schema@1",
            prompt_tokens=10,
            completion_tokens=5,
            latency_ms=1.0,
            queue_ms=0.0,
            cold_start=False,
        )

    async def close(self) -> None:
        pass


class SampledClient:
    """A scripted engine that answers with a greedy SQL and sampled ones per call."""

    def __init__(self, script: Callable[[GenerateRequest], list[str]]) -> None:
        self.script = script
        self.requests: list[GenerateRequest] = []

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        self.requests.append(request)
        sqls = self.script(request)
        return GenerateResponse(
            sql=sqls[0],
            candidates=sqls[1 : 1 + request.samples],
            raw_output=sqls[0],
            adapter=None,
            prompt_format="schema@1",
            prompt_tokens=10,
            completion_tokens=5 * (1 + request.samples),
            latency_ms=1.0,
            queue_ms=0.0,
            cold_start=False,
        )

    async def close(self) -> None:
        pass
