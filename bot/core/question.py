"""A question's flow, as small steps that each return a value:

validate → rate-limit → resolve (explicit → the thread's → the surface's → channel default →
the only one allowed → ask which) → prompt inputs → (clarify) → cache → generate → check →
(one retry that shows the model its error) → the answer's ``Trail``.

``Trail`` is what the audit row records, as far as the flow got; each step returns a new one
(nothing is written into shared state), and a step that stops the flow raises ``Stopped``
with the error the user sees and the trail so far. ``Assistant.ask`` records the trail.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, replace

from bot.core import checking, inputs
from bot.core import examples as verified
from bot.core.candidates import Candidate, choose, distinct, repair_error
from bot.core.config import AssistantConfig, Services
from bot.core.inputs import Notes
from bot.core.text import clean_text, one_line
from bot.core.types import Notify, Option, Progress, Step, ThreadTurn, VerifiedExample, Where
from chat2sql import errors
from chat2sql.cache import cache_key, normalize_question
from chat2sql.tokens import reject_control_tokens
from inference.client import WorkerColdStarting
from inference.protocol import (
    MAX_ERROR_CHARS,
    MAX_QUESTION_CHARS,
    DatabaseInfo,
    Example,
    GenerateRequest,
    GenerateResponse,
    PreviousAttempt,
    PriorTurn,
)
from schemas import guard
from schemas.glossary import GlossaryEntry
from schemas.registry import RegisteredDatabase

log = logging.getLogger(__name__)

WARMUP_POLL_S = 5.0


@dataclass(frozen=True, kw_only=True)
class Asked:
    """One question as a surface asked it."""

    text: str
    where: Where
    database: str | None = None  # named in the message ("[db:shop] ...")
    preferred: str | None = None  # the surface's suggestion (Slack: the viewed channel's default)
    notify: Notify | None = None
    progress: Progress | None = None


@dataclass(frozen=True, kw_only=True)
class Trail:
    """What the audit row records of a question, as far as its flow got."""

    question: str = ""
    database: str | None = None
    sql: str | None = None
    verdict: str | None = None
    cache_hit: bool = False
    adapter: str | None = None
    arm: str | None = None
    warnings: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()  # buttons to offer with an error
    candidates: int = 0  # distinct candidate SQL texts tried


class Stopped(Exception):
    """The flow ended before an answer: ``error`` is what the user is told."""

    def __init__(self, error: Exception, trail: Trail) -> None:
        super().__init__(type(error).__name__)
        self.error, self.trail = error, trail


@dataclass(frozen=True, kw_only=True)
class Resolved:
    entry: RegisteredDatabase  # as the model sees it (the glossary applied)
    glossary: tuple[GlossaryEntry, ...]
    turn: ThreadTurn | None


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """Everything a question's prompt is made of, and the cache key it answers to."""

    request: GenerateRequest  # the schema text not yet in
    notes: Notes
    examples: tuple[VerifiedExample, ...]
    cache_key: str


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One model call's outcome: the chosen SQL, or the greedy one and its problem."""

    sql: str | None
    problem: str | None
    trail: Trail
    request: GenerateRequest  # as sent: a retry extends its prompt


def validate_question(question: str) -> str:
    """The question as the model sees it: terminal escapes, control characters (not newline or
    tab) and bidi controls removed; refused when nothing is left, too long or a control token."""
    raw, question = question.strip(), clean_text(question).strip()
    if not question:
        raise errors.InvalidQuestion(
            "it is empty" if not raw else "nothing is left once control characters are removed"
        )
    if len(question) > MAX_QUESTION_CHARS:
        raise errors.InvalidQuestion(f"it is longer than {MAX_QUESTION_CHARS} characters")
    try:
        reject_control_tokens(question)
    except ValueError as err:
        raise errors.InvalidQuestion(str(err)) from None
    return question


async def step(progress: Progress | None, name: Step) -> None:
    """Tell the surface where the question is; a surface that cannot show it never stops the answer."""
    if progress is None:
        return
    try:
        await progress(name)
    except Exception:
        log.warning("could not show a progress step", extra={"fields": {"step": name}}, exc_info=True)


class QuestionFlow:
    """The steps of ``answer``; each takes what the one before returned."""

    def __init__(self, services: Services, config: AssistantConfig) -> None:
        self._s = services
        self._config = config

    async def answer(self, asked: Asked) -> Trail:
        """The accepted answer's trail (its ``sql`` set); ``Stopped`` otherwise."""
        trail = Trail(database=asked.database)
        try:
            question = validate_question(asked.text)
            trail = replace(trail, question=question)
            await self.rate_limit(asked.where)
            await step(asked.progress, "finding_tables")
            resolved = await self.resolve(asked, trail.database)
            adapter, prompt_format, arm = self.arm(asked.where, resolved.entry)
            trail = replace(trail, database=resolved.entry.name, adapter=adapter, arm=arm)
            made = await self.inputs(question, resolved, adapter=adapter, prompt_format=prompt_format)
            if made.request.context is None and not made.examples and self._config.clarify:
                await self.clarify(resolved.entry, question, asked.where)
            cached = await self.cached(made.cache_key, trail)
            if cached is not None:
                return cached
            attempt = await self.attempt(made, resolved.entry, asked, trail)
            trail = attempt.trail
            if attempt.problem is not None and self._config.retry:
                attempt = await self.retry(made.notes, resolved.entry, asked, attempt)
                trail = attempt.trail
            if attempt.problem is not None:
                trail = replace(attempt.trail, options=inputs.table_options(resolved.entry, question))
                raise errors.GuardRejected(trail.verdict or "validation", attempt.problem)
            await self.keep(made.cache_key, attempt.trail)
            return attempt.trail
        except Stopped:
            raise
        except Exception as err:
            raise Stopped(err, trail) from err

    # --- before the model ------------------------------------------------------------------

    async def rate_limit(self, where: Where) -> None:
        for scope, key, limit in (
            ("user", f"user:{where.platform}:{where.workspace}:{where.user_id}", self._config.user_limit),
            ("workspace", f"ws:{where.platform}:{where.workspace}", self._config.workspace_limit),
        ):
            decision = await self._s.limiter.acquire(key, limit)
            if not decision.allowed:
                self._s.metrics.rate_limited.labels(scope).inc()
                raise errors.RateLimited(decision.retry_after_s, scope)

    async def resolve(self, asked: Asked, explicit: str | None) -> Resolved:
        with self._s.tracer.observe("resolution") as span:
            turn = await self._s.state.last_turn(asked.where)
            entry = await resolve(self._s, explicit or (turn.database if turn else None), asked.where, asked.preferred)
            span.update(output={"database": entry.name, "follow_up": turn is not None})
        glossary = await self._s.catalog.glossary(entry.name) if self._config.glossary else ()
        return Resolved(entry=inputs.model_view(entry, glossary), glossary=glossary, turn=turn)

    def arm(self, where: Where, entry: RegisteredDatabase) -> tuple[str | None, str, str | None]:
        """The adapter and prompt format this question is asked with, and its A/B arm's label."""
        config = self._config
        if config.experiment is None:
            return config.adapter, config.prompt_format, None
        name = config.experiment.assign(where, entry.name)
        arm = config.experiment.arms[name]
        return (
            arm.adapter or config.adapter,
            arm.prompt_format or config.prompt_format,
            config.experiment.label(name),
        )

    async def inputs(self, question: str, resolved: Resolved, *, adapter: str | None, prompt_format: str) -> Inputs:
        entry, turn, config = resolved.entry, resolved.turn, self._config
        context = PriorTurn(question=turn.question, sql=turn.sql) if turn and turn.database == entry.name else None
        shown: list[VerifiedExample] = []
        if config.examples_k > 0:
            shown = verified.select(
                await verified.current(self._s.state, entry),
                question,
                k=config.examples_k,
                budget_tokens=config.examples_budget_tokens,
                min_similarity=config.examples_min_similarity,
            )
        index = await self._s.catalog.value_index(entry.name) if config.value_links else None
        notes = await asyncio.to_thread(inputs.notes_for, entry, resolved.glossary, question, index)
        key = cache_key(
            entry.name,
            entry.schema_hash,
            adapter or "",
            prompt_format,
            normalize_question(question),
            *((normalize_question(context.question), context.sql) if context else ()),
            *(f"example:{e.id}:{e.sql}" for e in shown),
            *(f"glossary:{e.kind}:{e.name}:{e.version}" for e in resolved.glossary),
            *(f"note:{hint}" for hint in notes.hints),
            f"candidates:{config.candidates}:{config.temperature}",
        )
        request = GenerateRequest(
            question=question,
            adapter=adapter,
            prompt_format=prompt_format,
            database=DatabaseInfo(name=entry.name, dialect=entry.schema.dialect),
            context=context,
            examples=[Example(question=e.question, sql=e.sql) for e in shown],
            hints=list(notes.hints),
            samples=config.candidates,
            temperature=config.temperature,
        )
        return Inputs(request=request, notes=notes, examples=tuple(shown), cache_key=key)

    async def clarify(self, entry: RegisteredDatabase, question: str, where: Where) -> None:
        """A question that names nothing in a multi-table schema gets a clarifying question
        (tables to pick, and other databases here that it does match) instead of a guess."""
        if len(entry.schema.tables) < 2 or await asyncio.to_thread(inputs.matches, entry.schema, question):
            return
        others: list[str] = []
        for name in await self._s.catalog.names():
            if len(others) == 3:
                break
            if name != entry.name and await self._s.state.is_allowed(name, where):
                other = await self._s.catalog.get(name)
                if await asyncio.to_thread(inputs.matches, other.schema, question):
                    others.append(name)
        options = (
            *(Option(label=f"db:{name}", text=f"[db:{name}] {question}") for name in others),
            *inputs.table_options(entry, question),
        )
        err = errors.Unmatched(entry.name, tuple(t.qualified_name for t in entry.schema.tables[:5]), tuple(others))
        raise Stopped(err, Trail(question=question, database=entry.name, options=options))

    async def cached(self, key: str, trail: Trail) -> Trail | None:
        if self._config.cache_ttl_s <= 0:
            return None
        hit = await self._s.cache.get(key)
        self._s.metrics.cache.labels("miss" if hit is None else "hit").inc()
        if hit is None:
            return None
        found = json.loads(hit)
        return replace(
            trail,
            sql=str(found["sql"]),
            verdict="accepted",
            cache_hit=True,
            warnings=tuple(found.get("warnings", [])),
        )

    async def keep(self, key: str, trail: Trail) -> None:
        if self._config.cache_ttl_s > 0:
            value = json.dumps({"sql": trail.sql, "warnings": list(trail.warnings)})
            await self._s.cache.set(key, value, ttl_s=self._config.cache_ttl_s)

    # --- the model and the checks ------------------------------------------------------------

    async def with_schema(self, notes: Notes, request: GenerateRequest) -> GenerateRequest:
        return await asyncio.to_thread(
            lambda: inputs.with_schema(
                notes,
                request,
                budget_tokens=self._config.schema_budget_tokens,
                max_input_tokens=self._config.max_input_tokens,
            )
        )

    async def attempt(
        self, made: Inputs, entry: RegisteredDatabase, asked: Asked, trail: Trail, *, name: Step = "writing_sql"
    ) -> Attempt:
        """One model call (its greedy answer and any sampled ones), every candidate through the
        guard and a short read-only run, the one chosen by agreement of their results
        (``bot.core.candidates``)."""
        with self._s.tracer.observe("schema_lookup") as span:
            request = await self.with_schema(made.notes, made.request)
            span.update(output={"tables": len(entry.schema.tables), "chars": len(request.database.schema_text)})
        return await self._attempt(request, entry, asked, trail, name)

    async def retry(self, notes: Notes, entry: RegisteredDatabase, asked: Asked, first: Attempt) -> Attempt:
        """The one automatic retry: the model sees its SQL and what was wrong with it."""
        assert first.problem is not None
        self._s.metrics.retries.inc()
        failed = (first.trail.sql or first.sql or "(no SQL)")[:4000]
        error = repair_error(first.problem, failed, entry.schema, limit=MAX_ERROR_CHARS)
        with self._s.tracer.observe("retry", input=first.problem[:500]):
            retry = first.request.model_copy(update={"previous": PreviousAttempt(sql=failed, error=error)})
            retry = await self.with_schema(notes, retry)
            return await self._attempt(retry, entry, asked, first.trail, "retrying")

    async def _attempt(
        self, request: GenerateRequest, entry: RegisteredDatabase, asked: Asked, trail: Trail, name: Step
    ) -> Attempt:
        # Worker errors (cold start, overload, timeout, down) carry their own sentence.
        await step(asked.progress, name)
        response = await self.generate(request, asked)
        trail = replace(trail, sql=response.sql or None, adapter=response.adapter)  # what the worker used
        texts = distinct([response.sql, *response.candidates])
        await step(asked.progress, "checking")
        db = checking.Database(
            entry=entry,
            url=await self._s.catalog.connection_url(entry.name),
            max_rows=self._config.preview_max_rows,
        )
        rows = checking.VALIDATION_ROWS if len(texts) == 1 else checking.CANDIDATE_ROWS
        with self._s.tracer.observe("guard", kind="guardrail", input=response.sql) as span:
            # sqlglot is CPU work: off the event loop, so acknowledgements are not held up behind it
            verdicts = await asyncio.to_thread(checking.guard_all, db, list(texts))
            span.update(output=[{"ok": v.ok, "rule": v.rule, "warnings": list(v.warnings)} for v in verdicts])
        with self._s.tracer.observe("validation", input=[v.normalized for v in verdicts if v.ok]):
            run = await asyncio.to_thread(checking.run_all, db, verdicts, rows)
        candidates = sorted(
            (replace(c, index=i) for c, indexes in zip(run, texts.values(), strict=True) for i in indexes),
            key=lambda c: c.index,
        )
        tried = len(texts)
        if self._config.grouping_repairs:
            grouped = await asyncio.to_thread(checking.regroup, db, candidates, trail.question)
            candidates, tried = list(grouped.candidates), tried + grouped.tried
        chosen = choose(candidates)
        if chosen is None and (self._config.schema_repairs or self._config.grouping_repairs):
            chosen, mended_tried = await self._mended(db, candidates, trail.question)
            tried += mended_tried
        trail = replace(trail, candidates=trail.candidates + tried)
        return self._verdict(trail, request, verdicts[0], candidates, chosen)

    async def _mended(
        self, db: checking.Database, failed: list[Candidate], question: str
    ) -> tuple[Candidate | None, int]:
        with self._s.tracer.observe("schema_repair") as span:
            found = await asyncio.to_thread(
                lambda: checking.mend(
                    db,
                    failed,
                    question,
                    schema_repairs=self._config.schema_repairs,
                    grouping_repairs=self._config.grouping_repairs,
                )
            )
            chosen = found.candidates[0] if found.candidates else None
            span.update(output=None if chosen is None else {"sql": chosen.normalized, "notes": list(chosen.warnings)})
        if found.tried:
            self._s.metrics.schema_repairs.labels("tried").inc()
        if chosen is not None:
            self._s.metrics.schema_repairs.labels("answered").inc()
        return chosen, found.tried

    def _verdict(
        self,
        trail: Trail,
        request: GenerateRequest,
        greedy_verdict: guard.GuardResult,
        candidates: list[Candidate],
        chosen: Candidate | None,
    ) -> Attempt:
        """One verdict per answer, as with a single candidate: accepted when the guard accepted
        the chosen one (or the greedy one), else the rule that refused the greedy one."""
        accepted = chosen is not None or greedy_verdict.ok
        self._s.metrics.guard_verdicts.labels("accepted" if accepted else str(greedy_verdict.rule)).inc()
        if chosen is None:
            greedy = candidates[0]
            trail = replace(trail, verdict=greedy.rule, sql=greedy.normalized or trail.sql)
            return Attempt(sql=greedy.normalized or greedy.sql, problem=greedy.problem, trail=trail, request=request)
        trail = replace(trail, verdict="accepted", sql=chosen.normalized, warnings=tuple(chosen.warnings))
        return Attempt(sql=chosen.normalized, problem=None, trail=trail, request=request)

    async def generate(self, request: GenerateRequest, asked: Asked) -> GenerateResponse:
        """The model's answer, traced and measured; a cold-starting worker is waited for, once
        the user knows."""
        started = time.perf_counter()
        with self._s.tracer.observe(
            "generation",
            kind="generation",
            input=request.question,
            model=request.adapter or "default",
            metadata={"prompt_format": request.prompt_format, "follow_up": request.context is not None},
        ) as span:
            response = await self._warm(request, asked)
            span.update(
                output=response.sql,
                model=response.adapter or "default",
                usage_details={"input": response.prompt_tokens, "output": response.completion_tokens},
                metadata={"prompt_format": response.prompt_format, "latency_ms": response.latency_ms},
            )
        m = self._s.metrics
        m.generations.inc()
        m.generation_seconds.observe(time.perf_counter() - started)
        m.tokens.labels("prompt").inc(response.prompt_tokens)
        m.tokens.labels("completion").inc(response.completion_tokens)
        m.tokens_per_request.observe(response.prompt_tokens + response.completion_tokens)
        if response.cold_start:
            m.cold_starts.inc()
        return response

    async def _warm(self, request: GenerateRequest, asked: Asked) -> GenerateResponse:
        deadline = time.monotonic() + self._config.warmup_wait_s
        told = False
        while True:
            try:
                return await self._s.client.generate(request)
            except WorkerColdStarting as err:
                if not told:
                    self._s.metrics.cold_starts.inc()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                if not told:
                    told = True
                    await step(asked.progress, "warming_up")
                    try:
                        if asked.notify is not None:
                            await asked.notify(err.message)
                    except Exception:  # the final reply still follows
                        log.warning("could not send the warming-up notice", exc_info=True)
                await self._s.sleep(min(err.retry_after_s or WARMUP_POLL_S, left))


# --- which database ---------------------------------------------------------------------


async def allowed_entry(services: Services, name: str, where: Where) -> RegisteredDatabase:
    """A registered database that may be used from ``where`` (UnknownDatabase, NotAllowedHere).

    An unknown name's reply lists only the databases usable here, not every registered one.
    """
    try:
        entry = await services.catalog.get(name)
    except errors.UnknownDatabase as err:
        usable = tuple([n for n in err.known if await services.state.is_allowed(n, where)])
        raise errors.UnknownDatabase(one_line(err.name), usable, here=True) from None
    if not await services.state.is_allowed(name, where):
        raise errors.NotAllowedHere(name)
    return entry


async def resolve(
    services: Services, explicit: str | None, where: Where, preferred: str | None = None
) -> RegisteredDatabase:
    """The database a question is asked of: named → the surface's suggestion → the channel's
    default → the only one allowed here; NeedDatabase (which?) when several are."""
    if explicit:
        return await allowed_entry(services, explicit, where)
    catalog, state = services.catalog, services.state
    names = await catalog.names()
    if preferred is not None and preferred in names and await state.is_allowed(preferred, where):
        return await catalog.get(preferred)
    default = await state.default(where)
    if default is not None and default in names:
        return await allowed_entry(services, default, where)
    if not names:
        raise errors.NoDatabases()
    allowed = tuple([n for n in names if await state.is_allowed(n, where)])
    if len(allowed) == 1:
        return await catalog.get(allowed[0])
    if not allowed:
        raise errors.NotAllowedHere(names[0]) if len(names) == 1 else errors.NothingAllowedHere()
    raise errors.NeedDatabase(allowed)
