"""A client that answers from a saved evaluation report instead of a model.

``python -m inference.eval --replay REPORT.json`` runs the questions again through today's
pipeline (guard, short runs, votes, schema repairs) with the model's answers recorded in an
earlier report (each item's ``attempts``: per model call, the greedy answer and the samples).
A change to what happens after the model (a new repair, a new way to choose) is measured in
minutes, and exactly: the candidates are the same, only the pipeline differs. A model call
the recording lacks (the new pipeline asks again where the old one did not) gets the
question's last recorded answer back (an empty one when nothing was recorded: the item
ended before the model), as a run with ``retry=off`` would, and is counted
(``unrecorded``) so a report can say how far the replay is from a live run. A question
asked more than once replays its recordings in order. Latency and tokens of a replay
measure nothing and read zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inference.protocol import GenerateRequest, GenerateResponse


@dataclass(frozen=True)
class Recording:
    database: str
    question: str
    attempts: Sequence[Sequence[str]]  # per model call: greedy, then samples


class ReplayError(ValueError):
    """A report that cannot be replayed: no attempts recorded, or a question it lacks."""


class ReplayClient:
    """The ``InferenceClient`` of a replay. A request without ``previous`` is a question's
    first model call (the next recording of that question, when it was asked more than
    once); each request with ``previous`` is its next call. Questions match whitespace
    aside, as the assistant cleans them before asking."""

    def __init__(self, recordings: Iterable[Recording]) -> None:
        self._answers: dict[tuple[str, str], list[Sequence[Sequence[str]]]] = {}
        for recording in recordings:
            self._answers.setdefault(_key(recording.database, recording.question), []).append(recording.attempts)
        if not any(attempts for occurrences in self._answers.values() for attempts in occurrences):
            raise ReplayError("the report records no model answers to replay (no item has attempts)")
        self._occurrence: dict[tuple[str, str], int] = {}
        self._calls: dict[tuple[str, str], int] = {}
        self.unrecorded = 0

    def check_covers(self, questions: Iterable[tuple[str, str]]) -> None:
        """A ``ReplayError`` naming the first (database, question) the recording lacks."""
        for database, question in questions:
            if _key(database, question) not in self._answers:
                raise ReplayError(f"the report has no answer for {question!r} on {database}")

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        key = _key(request.database.name, request.question)
        occurrences = self._answers.get(key)
        if occurrences is None:
            raise ReplayError(f"the report has no answer for {request.question!r} on {request.database.name}")
        if request.previous is None:
            self._occurrence[key] = self._occurrence.get(key, -1) + 1
            self._calls[key] = 0
        else:
            self._calls[key] = self._calls.get(key, 0) + 1
        attempts = occurrences[min(self._occurrence.get(key, 0), len(occurrences) - 1)]
        call = self._calls[key]
        if call >= len(attempts):
            self.unrecorded += 1
        greedy, *samples = attempts[min(call, len(attempts) - 1)] if attempts else [""]
        return GenerateResponse(
            sql=greedy,
            candidates=list(samples),
            raw_output=greedy,
            adapter=request.adapter,
            prompt_format=request.prompt_format or "replay",
            prompt_tokens=0,
            completion_tokens=0,
            latency_ms=0.0,
            queue_ms=0.0,
            cold_start=False,
        )

    async def close(self) -> None:
        pass


def _key(database: str, question: str) -> tuple[str, str]:
    return database, " ".join(question.split())
