"""The assistant: one chat message in, one reply out, the audit row written first.

Flow for a question: validate → rate limit (user, workspace) → resolve the database
(explicit → the thread's → channel default → the only one allowed here → ask which) →
cache → model → guard → a validation run on the read-only connection → on a guard
rejection or a database error, one automatic retry that shows the model its error → answer.

In a thread (``Where.thread``), a question is a follow-up of the thread's last answer: it
keeps that database and the model sees the earlier question and SQL. A worker that is
cold-starting is waited for (up to ``warmup_wait_s``) after telling the user through
``notify`` that the answer will follow. Registry and store calls run in a thread, so a
chat server's event loop stays free to acknowledge other requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bot.core import examples as verified
from bot.core.access import Admins
from bot.core.candidates import Candidate, choose, distinct, doubts, repair_error, result_key
from bot.core.experiment import Experiment
from bot.core.grammar import Admin, Ask, Command, Databases, Empty, Help, Use, parse
from bot.core.text import clean_text, cut, one_line
from bot.metrics import BotMetrics
from bot.store import AuditEntry, AuditRecord, BotStore, ThreadTurn, VerifiedExample, Where
from chat2sql import errors, messages
from chat2sql.cache import ResponseCache, cache_key, normalize_question
from chat2sql.log import request_id
from chat2sql.ratelimit import Limit, RateLimiter
from chat2sql.redact import redact
from chat2sql.tokens import reject_control_tokens
from chat2sql.tracing import NoopTracer, Tracer
from inference.client import InferenceClient, WorkerColdStarting
from inference.prompts import DEFAULT_FORMAT, UnknownPromptFormat, get_format, prompt_for
from inference.protocol import (
    MAX_ERROR_CHARS,
    MAX_HINTS,
    MAX_QUESTION_CHARS,
    DatabaseInfo,
    Example,
    GenerateRequest,
    GenerateResponse,
    PreviousAttempt,
    PriorTurn,
)
from schemas import glossary as terms
from schemas import guard
from schemas.glossary import GlossaryEntry
from schemas.grouping import asks_per_group, regrouped
from schemas.model import DatabaseSchema
from schemas.preview import ReadOnlyRunner, run_checked
from schemas.registry import RegisteredDatabase, Registry
from schemas.render import approx_tokens, rank_tables, render_schema, table_scores
from schemas.repair import Repair, repairs
from schemas.values import links

log = logging.getLogger(__name__)

VALIDATION_ROWS = 1  # a lone answer is run for one row: the database's errors feed the retry
CANDIDATE_ROWS = 20  # several are run for this many: their rows are their votes
REPAIRABLE_RULES = frozenset({"known_tables", "known_columns"})  # what schemas.repair mends
VALIDATION_TIMEOUT_S = 3.0
WARMUP_POLL_S = 5.0
GLOSSARY_BUDGET_TOKENS = 300  # of the prompt, for the glossary entries a question concerns
MAX_VALUE_HINTS = 5
SUGGESTION_LABEL_CHARS = 75  # a suggested prompt's title in Slack's assistant panel

# Tells the user something before the final reply (e.g. that the model is warming up).
Notify = Callable[[str], Awaitable[None]]

# Where a question is in its flow, for a surface that shows it (Slack's assistant status,
# Teams' informative stream updates); each step's words are ``messages.PROGRESS[step]``.
Step = Literal["finding_tables", "writing_sql", "checking", "retrying", "warming_up"]
Progress = Callable[[Step], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class AssistantConfig:
    user_limit: Limit
    workspace_limit: Limit
    cache_ttl_s: float = 3600.0
    schema_budget_tokens: int = 1500
    max_input_tokens: int | None = 2048  # the worker's limit on a prompt; None: the schema budget alone
    preview_max_rows: int = 50
    preview_timeout_s: float = 5.0
    adapter: str | None = None
    prompt_format: str = "schema"
    warmup_wait_s: float = 240.0
    experiment: Experiment | None = None
    examples_k: int = 3  # verified examples per prompt (0: none)
    examples_budget_tokens: int = 400
    examples_min_similarity: float = verified.MIN_SIMILARITY
    retry: bool = True  # one automatic retry that shows the model its error
    clarify: bool = False  # ask back when a question matches nothing in the schema (on in production settings)
    candidates: int = 0  # sampled candidates beside the greedy one, chosen by their results (settings: 4)
    temperature: float = 0.7  # of the sampled candidates
    value_links: bool = True  # tell the model which columns hold the values the question names
    schema_repairs: bool = True  # all candidates failed on an unknown name: try schemas.repair's mends
    grouping_repairs: bool = True  # also try ungrouped aggregating candidates grouped (schemas.grouping)
    glossary: bool = True  # the database's glossary entries that the question concerns enter the prompt


@dataclass(frozen=True, kw_only=True)
class Answer:
    sql: str
    database: str
    warnings: tuple[str, ...]
    latency_ms: float
    cache_hit: bool
    trace_id: str
    audit_id: int
    adapter: str | None = None


@dataclass(frozen=True, kw_only=True)
class Option:
    """A choice offered back to the user (a button): ``text`` is sent as their next message."""

    label: str
    text: str


@dataclass(frozen=True, kw_only=True)
class Reply:
    kind: Literal["answer", "text", "error"]
    text: str
    answer: Answer | None = None
    error_kind: str | None = None
    options: tuple[Option, ...] = ()  # a clarifying question's choices (which database, which table)


@dataclass(frozen=True, kw_only=True)
class PreviewReply:
    ok: bool
    text: str
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    truncated: bool = False
    elapsed_ms: float = 0.0
    sql: str = ""
    error_kind: str | None = None


@dataclass(frozen=True, kw_only=True)
class Notes:
    """The schema as the model sees it and the notes that go with one question."""

    schema: DatabaseSchema
    hints: tuple[str, ...] = ()
    linked: tuple[str, ...] = ()  # tables holding values the question names: kept first in a budget


@dataclass
class _Outcome:
    """What the audit row records, filled as the flow advances."""

    database: str | None = None
    sql: str | None = None
    verdict: str | None = None
    cache_hit: bool = False
    adapter: str | None = None
    error_kind: str | None = None
    warnings: list[str] = field(default_factory=list)
    question: str = ""
    notify: Notify | None = None
    progress: Progress | None = None
    preferred: str | None = None  # the database the surface suggests (Slack: the viewed channel's default)
    arm: str | None = None
    options: tuple[Option, ...] = ()
    candidates: int = 0  # distinct candidate SQL texts the model gave


class Assistant:
    def __init__(
        self,
        *,
        registry: Registry,
        store: BotStore,
        client: InferenceClient,
        limiter: RateLimiter,
        cache: ResponseCache,
        admins: Admins,
        config: AssistantConfig,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: BotMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self._client = client
        self._limiter = limiter
        self._cache = cache
        self._admins = admins
        self.config = config
        self._sleep = sleep
        self.metrics = metrics or BotMetrics()
        self.tracer: Tracer = tracer or NoopTracer()

    async def close(self) -> None:
        await self._client.close()
        await self._limiter.close()
        await self._cache.close()
        await asyncio.to_thread(self.tracer.close)  # flushes spans: bounded by LANGFUSE_TIMEOUT
        self.registry.close()
        self.store.close()

    # --- entry points -----------------------------------------------------------------

    async def handle(
        self,
        text: str,
        where: Where,
        *,
        notify: Notify | None = None,
        progress: Progress | None = None,
        preferred: str | None = None,
    ) -> Reply:
        """Any message of the grammar. ``progress`` hears each step of a question's flow;
        ``preferred`` is a database to use when the question names none and is no follow-up
        (ahead of the channel's default; skipped when it is not usable here)."""
        command: Command = parse(text, known=set(await asyncio.to_thread(self.registry.names)))
        match command:
            case Ask(database=db, question=question):
                return await self.ask(
                    question, where, database=db, notify=notify, progress=progress, preferred=preferred
                )
            case Use(database=db):
                return self._guarded(lambda: self._use(db, where))
            case Databases():
                return Reply(kind="text", text=self._databases(where))
            case Help():
                return Reply(kind="text", text=messages.HELP)
            case Admin():
                return await self._admin(command, text, where)
            case Empty():
                return Reply(kind="text", text=messages.HELP)
        raise AssertionError(command)  # pragma: no cover

    async def ask(
        self,
        question: str,
        where: Where,
        *,
        database: str | None = None,
        notify: Notify | None = None,
        progress: Progress | None = None,
        preferred: str | None = None,
    ) -> Reply:
        trace_id = uuid.uuid4().hex  # 32 hex digits: also the OpenTelemetry/Langfuse trace id
        token = request_id.set(trace_id)
        # What is traced, audited and echoed: never a NUL, a terminal escape or a bidi override.
        safe_question = clean_text(question)
        database = (one_line(database) or None) if database is not None else None
        started = time.perf_counter()
        outcome = _Outcome(database=database, notify=notify, progress=progress, preferred=preferred)
        choices: tuple[str, ...] = ()
        attributes = self.tracer.attributes(
            user_id=f"{where.platform}:{where.user_id}",
            session_id=f"{where.platform}:{where.workspace}:{where.channel}:{where.thread}" if where.thread else None,
            platform=where.platform,
            workspace=where.workspace,
            channel=where.channel,
        )
        try:
            with attributes, self.tracer.observe("question", trace_id=trace_id, input=safe_question) as span:
                try:
                    answer_sql = await self._answer(question, where, outcome)
                    reply_kind: Literal["answer", "error"] = "answer"
                    text = answer_sql
                except errors.Chat2SQLError as err:
                    outcome.error_kind = type(err).__name__
                    reply_kind, text = "error", messages.user_message(err)
                    if isinstance(err, errors.NeedDatabase):
                        choices = err.choices
                except Exception:
                    log.exception("question failed")
                    outcome.error_kind = "internal"
                    reply_kind, text = "error", messages.user_message(Exception())
                span.update(
                    output=outcome.sql if reply_kind == "answer" else text,
                    level="ERROR" if reply_kind == "error" else "DEFAULT",
                    metadata={"database": outcome.database, "arm": outcome.arm, "error_kind": outcome.error_kind},
                )
        finally:
            request_id.reset(token)
        elapsed_s = time.perf_counter() - started
        latency_ms = round(elapsed_s * 1000, 1)
        self.metrics.question_seconds.observe(elapsed_s)
        self.metrics.questions.labels(outcome.error_kind or "answer").inc()
        if outcome.error_kind:
            self.metrics.errors.labels(outcome.error_kind).inc()
        audit_id = await asyncio.to_thread(
            self.store.record,
            _audit_record(
                where,
                database=outcome.database,
                question=safe_question,
                sql=outcome.sql,
                guard_verdict=outcome.verdict,
                preview_rows=None,
                latency_ms=latency_ms,
                cache_hit=outcome.cache_hit,
                error_kind=outcome.error_kind,
                adapter=outcome.adapter,
                trace_id=trace_id,
                arm=outcome.arm,
            ),
        )
        if reply_kind == "error":
            options = outcome.options or tuple(
                Option(label=c, text=f"[db:{c}] {safe_question.strip()}") for c in choices
            )
            if outcome.error_kind == "GuardRejected":
                text = f"{text} {messages.GUARD_FAILED_TWICE if outcome.options else messages.REPHRASE}"
            return Reply(kind="error", text=text, error_kind=outcome.error_kind, options=options)
        assert outcome.database is not None and outcome.sql is not None
        turn = ThreadTurn(database=outcome.database, question=outcome.question, sql=outcome.sql, audit_id=audit_id)
        await asyncio.to_thread(self.store.remember_turn, where, turn)
        answer = Answer(
            sql=outcome.sql,
            database=outcome.database,
            warnings=tuple(outcome.warnings),
            latency_ms=latency_ms,
            cache_hit=outcome.cache_hit,
            trace_id=trace_id,
            audit_id=audit_id,
            adapter=outcome.adapter,
        )
        return Reply(kind="answer", text=text, answer=answer)

    def check_sql(self, database: str, sql: str, where: Where) -> tuple[RegisteredDatabase, guard.GuardResult]:
        """Someone's own SQL through the guard, against the database as the model sees it
        (a hidden column is unknown here too); UnknownDatabase, NotAllowedHere."""
        entry, _ = self._model_view(self.allowed_entry(database, where))
        return entry, guard.check(sql, entry.schema, allowed_functions=entry.allowed_functions)

    async def preview_sql(self, database: str, sql: str, where: Where) -> PreviewReply:
        """Someone's own SQL through the guard and the read-only preview, as an answer's is:
        the audit row (platform, database, the SQL as sent) is written first, then previewed."""
        entry = await asyncio.to_thread(self.allowed_entry, database, where)  # UnknownDatabase, NotAllowedHere
        audit_id = await asyncio.to_thread(
            self.store.record,
            _audit_record(
                where,
                database=entry.name,
                question=messages.OWN_SQL_QUESTION,
                sql=clean_text(sql),
                guard_verdict=None,
                preview_rows=None,
                latency_ms=0.0,
                cache_hit=False,
                error_kind=None,
                adapter=None,
                trace_id=uuid.uuid4().hex,
                arm=None,
            ),
        )
        return await self.preview(audit_id, where)

    async def preview(self, audit_id: int, where: Where) -> PreviewReply:
        """Run an answer's SQL through the guard and the read-only preview."""
        entry_row = await asyncio.to_thread(self.store.get, audit_id)
        if entry_row is None or entry_row.sql is None or entry_row.database is None:
            return PreviewReply(ok=False, text="That answer can no longer be previewed.", error_kind="unknown_answer")
        started = time.perf_counter()
        with self.tracer.observe("preview", trace_id=entry_row.trace_id, input=entry_row.sql) as span:
            try:
                entry = await asyncio.to_thread(self.allowed_entry, entry_row.database, where)
                entry, _ = await asyncio.to_thread(self._model_view, entry)
                out = await asyncio.to_thread(
                    self._run, entry, entry_row.sql, self.config.preview_max_rows, self.config.preview_timeout_s
                )
            except errors.Chat2SQLError as err:
                out = {"ok": False, "reason": messages.user_message(err), "rule": type(err).__name__}
            self.metrics.preview_seconds.observe(time.perf_counter() - started)
            if not out["ok"]:
                span.update(level="ERROR", status_message=str(out.get("rule")))
                if out.get("rule") not in ("NotAllowedHere", "UnknownDatabase"):  # someone else's click
                    await asyncio.to_thread(self.store.set_preview_error, audit_id, str(out.get("rule")))
                return PreviewReply(
                    ok=False, text=str(out.get("reason")), sql=entry_row.sql, error_kind=str(out.get("rule"))
                )
            span.update(output={"rows": len(out["rows"]), "truncated": bool(out["truncated"])})
        await asyncio.to_thread(self.store.set_preview_rows, audit_id, len(out["rows"]))
        return PreviewReply(
            ok=True,
            text="",
            columns=tuple(out["columns"]),
            rows=tuple(tuple(r) for r in out["rows"]),
            truncated=bool(out["truncated"]),
            elapsed_ms=float(out["elapsed_ms"]),
            sql=str(out["normalized"]),
        )

    def feedback(
        self, audit_id: int, where: Where, rating: Literal["up", "down"], corrected_sql: str | None = None
    ) -> Reply:
        try:
            self.store.add_feedback(
                audit_id=audit_id, user_id=where.user_id, rating=rating, corrected_sql=corrected_sql
            )
        except errors.Chat2SQLError as err:
            return Reply(kind="error", text=messages.user_message(err), error_kind=type(err).__name__)
        entry = self.store.get(audit_id)
        note = ""
        if entry is not None:
            value = 1.0 if rating == "up" else 0.0
            self.tracer.score(trace_id=entry.trace_id, name="user_feedback", value=value, comment=corrected_sql)
            note = self._keep_example(entry, where, rating, corrected_sql)
        return Reply(kind="text", text=messages.feedback_thanks(rating) + note)

    def _keep_example(self, entry: AuditEntry, where: Where, rating: str, corrected_sql: str | None) -> str:
        """Admins' 👍 answers and admins' corrections become verified examples of their database.

        Examples go into everyone's prompts, so anyone else's rating is feedback only (the audit
        row and the trace score): one user must not be able to teach the model for all.
        """
        if entry.database is None or entry.database not in self.registry.names():
            return ""
        database = self.registry.get(entry.database)
        who = f"{where.platform}:{where.user_id}"
        admin = self._admins.allows(where.platform, where.user_id)
        if rating == "up" and entry.sql and entry.error_kind is None:
            if not admin:
                return ""
            try:
                reject_control_tokens(entry.question)
                reject_control_tokens(entry.sql)
            except ValueError as err:
                return messages.example_refused(str(err))
            self.store.add_example(
                database=database.name,
                question=entry.question,
                sql=entry.sql,
                source="thumbs_up",
                created_by=who,
                schema_hash=database.schema_hash,
                audit_id=entry.id,
            )
            return messages.example_kept(database.name)
        if rating == "down" and corrected_sql:
            if not admin:
                return messages.EXAMPLE_FOR_ADMINS
            sql = corrected_sql.strip().rstrip(";").strip()
            verdict = guard.check(sql, database.schema, allowed_functions=database.allowed_functions)
            if not verdict.ok:
                return messages.example_refused(f"{verdict.rule}: {verdict.reason}")
            try:
                reject_control_tokens(sql)  # it would go into every similar question's prompt
            except ValueError as err:
                return messages.example_refused(str(err))
            self.store.add_example(
                database=database.name,
                question=entry.question,
                sql=sql,
                source="correction",
                created_by=who,
                schema_hash=database.schema_hash,
                audit_id=entry.id,
            )
            return messages.example_kept(database.name)
        return ""

    def schema_text(self, database: str, where: Where, *, question: str | None = None) -> str:
        """The schema as the model sees it (hidden columns left out); with ``question``, the
        tables that question's prompt would keep within the schema budget, and the notes the
        model would get beside them (glossary entries, the columns holding its values)."""
        entry, glossary = self._model_view(self.allowed_entry(database, where))
        if question is None:
            return render_schema(entry.schema)
        question = _validate_question(question)
        notes = self._notes_for(entry, glossary, question)
        text = render_schema(
            entry.schema, question=question, max_tokens=self.config.schema_budget_tokens, linked=notes.linked
        )
        return "\n".join([text, *(f"-- {hint}" for hint in notes.hints)])

    # --- the question flow -----------------------------------------------------------

    async def _answer(self, question: str, where: Where, outcome: _Outcome) -> str:
        question = outcome.question = _validate_question(question)
        await self._rate_limit(where)
        await _step(outcome.progress, "finding_tables")
        with self.tracer.observe("resolution") as span:
            turn = await asyncio.to_thread(self.store.last_turn, where)
            explicit = outcome.database or (turn.database if turn else None)
            entry = await asyncio.to_thread(self._resolve, explicit, where, outcome.preferred)
            span.update(output={"database": entry.name, "follow_up": turn is not None})
        outcome.database = entry.name
        entry, glossary = await asyncio.to_thread(self._model_view, entry)
        adapter, prompt_format = self.config.adapter, self.config.prompt_format
        experiment = self.config.experiment
        if experiment is not None:
            arm_name = experiment.assign(where, entry.name)
            arm = experiment.arms[arm_name]
            adapter, prompt_format = arm.adapter or adapter, arm.prompt_format or prompt_format
            outcome.arm = experiment.label(arm_name)
        outcome.adapter = adapter
        context = PriorTurn(question=turn.question, sql=turn.sql) if turn and turn.database == entry.name else None
        shown = await asyncio.to_thread(self._examples_for, entry, question)
        notes = await asyncio.to_thread(self._notes_for, entry, glossary, question)
        if context is None and not shown and self.config.clarify:
            await asyncio.to_thread(self._check_matches, entry, question, where, outcome)
        key = cache_key(
            entry.name,
            entry.schema_hash,
            adapter or "",
            prompt_format,
            normalize_question(question),
            *((normalize_question(context.question), context.sql) if context else ()),
            *(f"example:{e.id}:{e.sql}" for e in shown),
            *(f"glossary:{e.kind}:{e.name}:{e.version}" for e in glossary),
            *(f"note:{hint}" for hint in notes.hints),
            f"candidates:{self.config.candidates}:{self.config.temperature}",
        )
        if self.config.cache_ttl_s > 0:
            cached = await self._cache.get(key)
            self.metrics.cache.labels("miss" if cached is None else "hit").inc()
            if cached is not None:
                hit = json.loads(cached)
                outcome.sql, outcome.verdict, outcome.cache_hit = hit["sql"], "accepted", True
                outcome.warnings = list(hit.get("warnings", []))
                return str(hit["sql"])
        request = GenerateRequest(
            question=question,
            adapter=adapter,
            prompt_format=prompt_format,
            database=DatabaseInfo(name=entry.name, dialect=entry.schema.dialect),
            context=context,
            examples=[Example(question=e.question, sql=e.sql) for e in shown],
            hints=list(notes.hints),
            samples=self.config.candidates,
            temperature=self.config.temperature,
        )
        with self.tracer.observe("schema_lookup") as span:
            request = await asyncio.to_thread(self._with_schema, notes, request)
            span.update(output={"tables": len(entry.schema.tables), "chars": len(request.database.schema_text)})
        sql, problem = await self._attempt(request, entry, outcome)
        if problem is not None and not self.config.retry:
            outcome.options = self._table_options(entry, question)
            raise errors.GuardRejected(outcome.verdict or "validation", problem)
        if problem is not None:
            self.metrics.retries.inc()
            failed = (outcome.sql or sql or "(no SQL)")[:4000]
            error = repair_error(problem, failed, entry.schema, limit=MAX_ERROR_CHARS)
            previous = PreviousAttempt(sql=failed, error=error)
            with self.tracer.observe("retry", input=problem[:500]):
                retry = request.model_copy(update={"previous": previous})
                retry = await asyncio.to_thread(self._with_schema, notes, retry)
                sql, problem = await self._attempt(retry, entry, outcome, step="retrying")
            if problem is not None:
                outcome.options = self._table_options(entry, question)
                raise errors.GuardRejected(outcome.verdict or "validation", problem)
        assert sql is not None
        if self.config.cache_ttl_s > 0:
            await self._cache.set(
                key, json.dumps({"sql": sql, "warnings": outcome.warnings}), ttl_s=self.config.cache_ttl_s
            )
        return sql

    async def _attempt(
        self, request: GenerateRequest, entry: RegisteredDatabase, outcome: _Outcome, *, step: Step = "writing_sql"
    ) -> tuple[str | None, str | None]:
        """One model call (its greedy answer and any sampled ones), every candidate through the
        guard and a short read-only run, the one chosen by agreement of their results
        (``bot.core.candidates``): (normalized SQL, None), or (the greedy SQL, its problem)."""
        # Worker errors (cold start, overload, timeout, down) carry their own sentence.
        await _step(outcome.progress, step)
        started = time.perf_counter()
        with self.tracer.observe(
            "generation",
            kind="generation",
            input=request.question,
            model=request.adapter or "default",
            metadata={"prompt_format": request.prompt_format, "follow_up": request.context is not None},
        ) as span:
            response = await self._generate(request, outcome.notify, outcome.progress)
            span.update(
                output=response.sql,
                model=response.adapter or "default",
                usage_details={"input": response.prompt_tokens, "output": response.completion_tokens},
                metadata={"prompt_format": response.prompt_format, "latency_ms": response.latency_ms},
            )
        self._observe_generation(response, time.perf_counter() - started)
        outcome.sql = response.sql or None
        outcome.adapter = response.adapter  # what the worker actually used (its default, if ours is unset)
        texts = distinct([response.sql, *response.candidates])
        await _step(outcome.progress, "checking")
        with self.tracer.observe("guard", kind="guardrail", input=response.sql) as span:
            # sqlglot is CPU work: off the event loop, so acknowledgements are not held up behind it
            verdicts = await asyncio.to_thread(self._guard_all, entry, list(texts))
            span.update(output=[{"ok": v.ok, "rule": v.rule, "warnings": list(v.warnings)} for v in verdicts])
        rows = VALIDATION_ROWS if len(texts) == 1 else CANDIDATE_ROWS
        with self.tracer.observe("validation", input=[v.normalized for v in verdicts if v.ok]):
            checked = await asyncio.to_thread(self._run_all, entry, verdicts, rows)
        candidates = sorted(
            (replace(c, index=i) for c, indexes in zip(checked, texts.values(), strict=True) for i in indexes),
            key=lambda c: c.index,
        )
        outcome.candidates += len(texts)
        if self.config.grouping_repairs:
            candidates = await asyncio.to_thread(self._regrouped, entry, candidates, outcome)
        chosen = choose(candidates)
        if chosen is None and (self.config.schema_repairs or self.config.grouping_repairs):
            with self.tracer.observe("schema_repair") as span:
                chosen = await asyncio.to_thread(self._mended, entry, candidates, outcome)
                mended = None if chosen is None else {"sql": chosen.normalized, "notes": list(chosen.warnings)}
                span.update(output=mended)
        # One verdict per answer, as with a single candidate: accepted when the guard accepted
        # the chosen one (or the greedy one), else the rule that refused the greedy one.
        greedy_verdict = verdicts[0]
        accepted = chosen is not None or greedy_verdict.ok
        self.metrics.guard_verdicts.labels("accepted" if accepted else str(greedy_verdict.rule)).inc()
        if chosen is None:
            greedy = candidates[0]
            outcome.verdict = greedy.rule
            if greedy.normalized is not None:
                outcome.sql = greedy.normalized
            return greedy.normalized or greedy.sql, greedy.problem
        outcome.verdict, outcome.sql, outcome.warnings = "accepted", chosen.normalized, list(chosen.warnings)
        return chosen.normalized, None

    def _mended(self, entry: RegisteredDatabase, failed: Sequence[Candidate], outcome: _Outcome) -> Candidate | None:
        """When every candidate failed: the schema repairs (``schemas.repair``) of those that
        named a table or column the schema lacks, and the grouped versions
        (``schemas.grouping``) of those the database refused (``ORDER BY COUNT(*)`` without
        GROUP BY), through the guard and the same short run, chosen among as the candidates
        are. A grouping is a guess the schema does not back: one doubt. The notes become the
        answer's warnings."""
        proposals: dict[str, tuple[tuple[str, ...], int]] = {}
        tried = {c.sql for c in failed}
        per_group = asks_per_group(outcome.question)
        for candidate in failed:
            mends: list[tuple[Repair, int]] = []
            if candidate.rule in REPAIRABLE_RULES and self.config.schema_repairs:
                mends = [(mended, 0) for mended in repairs(candidate.sql, entry.schema)]
            elif candidate.rule == "database_error" and self.config.grouping_repairs:
                grouped = regrouped(candidate.normalized or candidate.sql, entry.schema.dialect, per_group=per_group)
                if grouped is not None:  # the guard's notes on the original still hold, and its doubts
                    notes = (*grouped.notes, *candidate.warnings)
                    mends = [(replace(grouped, notes=notes), max(1, candidate.doubts))]
            for mended, doubt in mends:
                if mended.sql not in tried:
                    proposals.setdefault(mended.sql, (mended.notes, doubt))
        if not proposals:
            return None
        self.metrics.schema_repairs.labels("tried").inc()
        verdicts = self._guard_all(entry, list(proposals))
        checked = self._run_all(entry, verdicts, CANDIDATE_ROWS)
        outcome.candidates += len(proposals)
        start = len(failed)
        mended_candidates = [
            replace(c, index=start + i, warnings=(*notes, *c.warnings), doubts=c.doubts + doubt)
            for i, (c, (notes, doubt)) in enumerate(zip(checked, proposals.values(), strict=True))
        ]
        chosen = choose(mended_candidates)
        if chosen is not None:
            self.metrics.schema_repairs.labels("answered").inc()
        return chosen

    def _regrouped(
        self, entry: RegisteredDatabase, candidates: Sequence[Candidate], outcome: _Outcome
    ) -> list[Candidate]:
        """``candidates`` with each accepted one that aggregates without GROUP BY read as its grouped
        version (``schemas.grouping``), when that passes the guard and the same short run.
        The grouped one keeps the original's index, warnings and doubts (the ungrouped one
        stands for the grouping guess), so it weighs what the original did: two other
        candidates that agree outvote it. The grouping's note comes first among its warnings."""
        sources: dict[str, Repair] = {}
        per_group = asks_per_group(outcome.question)
        for candidate in candidates:
            # Only an ungrouped SELECT can be regrouped, and ``doubts`` counted it: no re-parse of the rest.
            if candidate.ok and candidate.doubts:
                grouped = regrouped(candidate.normalized or candidate.sql, entry.schema.dialect, per_group=per_group)
                if grouped is not None:
                    sources[candidate.sql] = grouped
        if not sources:
            return list(candidates)
        proposals = list(dict.fromkeys(r.sql for r in sources.values()))
        checked = dict(
            zip(proposals, self._run_all(entry, self._guard_all(entry, proposals), CANDIDATE_ROWS), strict=True)
        )
        outcome.candidates += len(proposals)
        out = []
        for candidate in candidates:
            repair = sources.get(candidate.sql)
            variant = checked[repair.sql] if repair is not None else None
            if repair is None or variant is None or not variant.ok:
                out.append(candidate)
                continue
            warnings = (*repair.notes, *dict.fromkeys((*candidate.warnings, *variant.warnings)))
            doubts = max(candidate.doubts, variant.doubts + 1)  # the original's (the guard's moves too)
            out.append(replace(variant, index=candidate.index, doubts=doubts, warnings=warnings))
        return out

    def _guard_all(self, entry: RegisteredDatabase, sqls: list[str]) -> list[guard.GuardResult]:
        return [
            guard.check(
                sql, entry.schema, max_rows=self.config.preview_max_rows, allowed_functions=entry.allowed_functions
            )
            for sql in sqls
        ]

    def _run_all(self, entry: RegisteredDatabase, verdicts: list[guard.GuardResult], rows: int) -> list[Candidate]:
        """Each guard-accepted candidate run for ``rows`` rows on one read-only connection:
        the database's own errors drop it (and feed the repair), its rows are its vote."""
        out = []
        runner: ReadOnlyRunner | None = None
        try:
            for verdict in verdicts:
                if not verdict.ok or verdict.normalized is None:
                    out.append(Candidate(sql=verdict.sql, index=0, rule=verdict.rule, problem=f"{verdict.reason}"))
                    continue
                accepted = Candidate(
                    sql=verdict.sql,
                    index=0,
                    normalized=verdict.normalized,
                    warnings=verdict.warnings,
                    doubts=doubts(verdict.normalized, verdict.warnings, entry.schema.dialect),
                )
                if runner is None:
                    runner = ReadOnlyRunner(
                        url=self.registry.connection_url(entry.name), allowed_functions=entry.allowed_functions
                    )
                try:
                    result = runner.run(verdict.normalized, max_rows=rows, timeout_s=VALIDATION_TIMEOUT_S)
                except errors.PreviewTimeout:
                    out.append(accepted)  # slow is not wrong: the preview has its own, longer limit
                except errors.PreviewFailed as err:
                    out.append(replace(accepted, rule="database_error", problem=messages.user_message(err)))
                else:
                    key = result_key(result.columns, result.rows)
                    out.append(replace(accepted, result=key, rows=len(result.rows)))
        finally:
            if runner is not None:
                runner.close()
        return out

    def _model_view(self, entry: RegisteredDatabase) -> tuple[RegisteredDatabase, tuple[GlossaryEntry, ...]]:
        """The database as the model sees it, and its glossary: hidden columns gone (from the
        prompt, and so for the guard too: the model's SQL may not name them), column
        descriptions as comments."""
        entries = self.registry.glossary.entries(entry.name) if self.config.glossary else ()
        if not entries:
            return entry, ()
        return replace(entry, schema=terms.apply(entry.schema, entries)), entries

    def _notes_for(self, entry: RegisteredDatabase, glossary: Sequence[GlossaryEntry], question: str) -> Notes:
        """What the model is told for this question beyond the schema: the glossary's terms
        and metrics that the question concerns and the columns holding the values it names
        (never a hidden column's)."""
        hints, linked = [], []
        if glossary:
            chosen = terms.relevant(glossary, question, budget_tokens=GLOSSARY_BUDGET_TOKENS)
            hints += [e.hint for e in chosen if e.kind in ("term", "metric")]  # descriptions: in the schema
        if self.config.value_links:
            index = self.registry.values.index(entry.name)
            if index is not None:
                found = links(index, question, hidden=terms.hidden_columns(glossary))[:MAX_VALUE_HINTS]
                hints += [link.hint for link in found]
                linked += [link.table for link in found]
        return Notes(schema=entry.schema, hints=tuple(hints[:MAX_HINTS]), linked=tuple(dict.fromkeys(linked)))

    def _with_schema(self, notes: Notes, request: GenerateRequest) -> GenerateRequest:
        """``request`` with the schema text its prompt has room for.

        The text lists tables in the schema's order whatever the question, so that the
        engine's prefix cache serves every question on the database; the question only picks
        which tables are kept when they do not all fit. That pick has to happen here: the
        worker cuts whole tables from the end of the text to fit ``max_input_tokens``, which
        now means by position, not by relevance. So the budget is the smaller of the schema
        budget and what the rest of the prompt (examples, a follow-up, a retry) leaves. A text
        that still fits is kept as it is, so that a retry's prompt extends the first one."""
        budget = self.config.schema_budget_tokens
        limit = self.config.max_input_tokens
        if limit is not None:
            try:
                fmt = get_format(request.prompt_format or DEFAULT_FORMAT)
            except UnknownPromptFormat:  # the worker's answer to it is the one the user sees
                fmt = None
            if fmt is not None and fmt.uses_schema:
                rest = approx_tokens(prompt_for(_schema_text(request, ""), fmt.name))
                budget = max(0, min(budget, limit - rest))
        text = request.database.schema_text
        if text and approx_tokens(text) <= budget:
            return request
        rendered = render_schema(notes.schema, question=request.question, max_tokens=budget, linked=notes.linked)
        return _schema_text(request, rendered)

    def _examples_for(self, entry: RegisteredDatabase, question: str) -> list[VerifiedExample]:
        if self.config.examples_k <= 0:
            return []
        return verified.select(
            verified.current(self.store, entry),
            question,
            k=self.config.examples_k,
            budget_tokens=self.config.examples_budget_tokens,
            min_similarity=self.config.examples_min_similarity,
        )

    def _check_matches(self, entry: RegisteredDatabase, question: str, where: Where, outcome: _Outcome) -> None:
        """A question that names nothing in a multi-table schema gets a clarifying question
        (tables to pick, and other databases here that it does match) instead of a guess."""
        if len(entry.schema.tables) < 2 or any(score > 0 for score in table_scores(entry.schema, question).values()):
            return
        others = tuple(
            name
            for name in self.registry.names()
            if name != entry.name
            and self.store.is_allowed(name, where)
            and any(score > 0 for score in table_scores(self.registry.get(name).schema, question).values())
        )[:3]
        outcome.options = (
            *(Option(label=f"db:{name}", text=f"[db:{name}] {question}") for name in others),
            *self._table_options(entry, question),
        )
        raise errors.Unmatched(entry.name, tuple(t.qualified_name for t in entry.schema.tables[:5]), others)

    @staticmethod
    def _table_options(entry: RegisteredDatabase, question: str, limit: int = 4) -> tuple[Option, ...]:
        """Buttons that ask again naming one table: the most relevant first, else the best connected."""
        ranked = rank_tables(entry.schema, question)
        if not any(score > 0 for score in table_scores(entry.schema, question).values()):
            links = {t.qualified_name: len(t.foreign_keys) for t in entry.schema.tables}
            for t in entry.schema.tables:
                for fk in t.foreign_keys:
                    links[fk.ref_table] = links.get(fk.ref_table, 0) + 1
            ranked = sorted(links, key=lambda n: (-links[n], n))
        return tuple(Option(label=t, text=f"[db:{entry.name}] {question} (use table {t})") for t in ranked[:limit])

    def _observe_generation(self, response: GenerateResponse, elapsed_s: float) -> None:
        m = self.metrics
        m.generations.inc()
        m.generation_seconds.observe(elapsed_s)
        m.tokens.labels("prompt").inc(response.prompt_tokens)
        m.tokens.labels("completion").inc(response.completion_tokens)
        m.tokens_per_request.observe(response.prompt_tokens + response.completion_tokens)
        if response.cold_start:
            m.cold_starts.inc()

    async def _generate(
        self, request: GenerateRequest, notify: Notify | None, progress: Progress | None = None
    ) -> GenerateResponse:
        """The model's answer; a cold-starting worker is waited for, once the user knows."""
        deadline = time.monotonic() + self.config.warmup_wait_s
        told = False
        while True:
            try:
                return await self._client.generate(request)
            except WorkerColdStarting as err:
                if not told:
                    self.metrics.cold_starts.inc()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                if not told:
                    told = True
                    await _step(progress, "warming_up")
                    try:
                        if notify is not None:
                            await notify(err.message)
                    except Exception:  # the final reply still follows
                        log.warning("could not send the warming-up notice", exc_info=True)
                await self._sleep(min(err.retry_after_s or WARMUP_POLL_S, left))

    def _run(self, entry: RegisteredDatabase, sql: str, max_rows: int, timeout_s: float) -> dict[str, Any]:
        runner = ReadOnlyRunner(url=self.registry.connection_url(entry.name), allowed_functions=entry.allowed_functions)
        try:
            return run_checked(
                sql,
                entry.schema,
                runner,
                max_rows=max_rows,
                timeout_s=timeout_s,
                allowed_functions=entry.allowed_functions,
            )
        finally:
            runner.close()

    async def _rate_limit(self, where: Where) -> None:
        for scope, key, limit in (
            ("user", f"user:{where.platform}:{where.workspace}:{where.user_id}", self.config.user_limit),
            ("workspace", f"ws:{where.platform}:{where.workspace}", self.config.workspace_limit),
        ):
            decision = await self._limiter.acquire(key, limit)
            if not decision.allowed:
                self.metrics.rate_limited.labels(scope).inc()
                raise errors.RateLimited(decision.retry_after_s, scope)

    def _resolve(self, explicit: str | None, where: Where, preferred: str | None = None) -> RegisteredDatabase:
        if explicit:
            return self.allowed_entry(explicit, where)
        names = self.registry.names()
        if preferred is not None and preferred in names and self.store.is_allowed(preferred, where):
            return self.registry.get(preferred)
        default = self.store.default(where)
        if default is not None and default in names:
            return self.allowed_entry(default, where)
        if not names:
            raise errors.NoDatabases()
        allowed = tuple(n for n in names if self.store.is_allowed(n, where))
        if len(allowed) == 1:
            return self.registry.get(allowed[0])
        if not allowed:
            raise errors.NotAllowedHere(names[0]) if len(names) == 1 else errors.NothingAllowedHere()
        raise errors.NeedDatabase(allowed)

    def allowed_entry(self, name: str, where: Where) -> RegisteredDatabase:
        """A registered database that may be used from ``where`` (UnknownDatabase, NotAllowedHere).

        An unknown name's reply lists only the databases usable here, not every registered one.
        """
        try:
            entry = self.registry.get(name)
        except errors.UnknownDatabase as err:
            usable = tuple(n for n in err.known if self.store.is_allowed(n, where))
            raise errors.UnknownDatabase(one_line(err.name), usable, here=True) from None
        if not self.store.is_allowed(name, where):
            raise errors.NotAllowedHere(name)
        return entry

    # --- other commands --------------------------------------------------------------

    def _guarded(self, action: Any) -> Reply:
        try:
            return Reply(kind="text", text=str(action()))
        except errors.Chat2SQLError as err:
            return Reply(kind="error", text=messages.user_message(err), error_kind=type(err).__name__)

    def _use(self, name: str, where: Where) -> str:
        self.allowed_entry(name, where)
        self.store.set_default(where, name)
        return messages.default_set(name)

    def usable_databases(self, where: Where) -> list[RegisteredDatabase]:
        """The registered databases that may be used from ``where``."""
        return [e for e in self.registry.list() if self.store.is_allowed(e.name, where)]

    def channel_default(self, where: Where) -> str | None:
        """The database ``where``'s channel asks by default, while it is registered (whether it
        may be used from a given place is the resolution's check)."""
        default = self.store.default(where)
        return default if default in self.registry.names() else None

    def suggested_prompts(self, where: Where, *, limit: int = 4) -> tuple[Option, ...]:
        """First questions to offer ``where.user_id``: verified examples (an admin's, or from the
        user's own questions) of the databases they use most, then a simple question about each
        other usable database. Never another user's question."""
        usable = {e.name: e for e in self.usable_databases(where)}
        ranked = [name for name in self.store.most_used_databases(where) if name in usable]
        ranked += [name for name in usable if name not in ranked]
        chosen: dict[str, Option] = {}  # by the text it sends: each once, in order
        for name in ranked:
            for example in self.store.shareable_examples(name, where, limit=limit - len(chosen)):
                option = _suggestion(name, example.question)
                chosen.setdefault(option.text, option)
            if len(chosen) >= limit:
                return tuple(chosen.values())[:limit]
        for name in ranked:
            tables = self._model_view(usable[name])[0].schema.tables  # never a hidden table
            if tables:  # the plainest name reads best in a sentence: "How many rows does orders have?"
                plain = min(tables, key=lambda t: (not t.name.isalpha(), len(t.name), t.name))
                option = _suggestion(name, messages.suggested_count(plain.name))
                chosen.setdefault(option.text, option)
            if len(chosen) >= limit:
                break
        return tuple(chosen.values())[:limit]

    def start_over(self, where: Where, database: str | None) -> None:
        """The surface's context moved to ``database`` (Slack: the user views another channel): a
        thread whose last answer used another database starts over, so its next question asks
        ``database`` instead of following up."""
        turn = self.store.last_turn(where)
        if turn is not None and database is not None and turn.database != database:
            self.store.forget_turn(where)

    def _databases(self, where: Where) -> str:
        entries = self.usable_databases(where)
        if not entries:
            return messages.no_databases_here()
        default = self.store.default(where)
        lines = [
            f"• `{e.name}` ({e.dialect}, {len(e.schema.tables)} tables){' — default here' if e.name == default else ''}"
            + (f": {one_line(e.description)}" if e.description else "")
            for e in entries
        ]
        return "Databases you can ask here:\n" + "\n".join(lines)

    async def _admin(self, command: Admin, text: str, where: Where) -> Reply:
        from bot.core.admin import run_admin

        # Arguments, a registration's description and the audit row: no NUL, escapes or bidi controls.
        text = clean_text(text)
        command = Admin(command.action, tuple(clean_text(arg) for arg in command.args))
        if not self._admins.allows(where.platform, where.user_id):
            reply = Reply(kind="error", text=messages.user_message(errors.AdminOnly()), error_kind="AdminOnly")
        else:
            try:
                reply = Reply(kind="text", text=await run_admin(self, command, where, text))
            except errors.Chat2SQLError as err:
                reply = Reply(kind="error", text=messages.user_message(err), error_kind=type(err).__name__)
        await asyncio.to_thread(
            self.store.record,
            _audit_record(
                where,
                database=command.args[0] if command.args else None,
                question=redact(text),
                sql=None,
                guard_verdict=None,
                preview_rows=None,
                latency_ms=None,
                cache_hit=False,
                error_kind=reply.error_kind,
                adapter=None,
                trace_id=uuid.uuid4().hex[:16],
            ),
        )
        return reply


def _schema_text(request: GenerateRequest, text: str) -> GenerateRequest:
    return request.model_copy(update={"database": request.database.model_copy(update={"schema_text": text})})


def _suggestion(database: str, question: str) -> Option:
    question = one_line(question)
    return Option(label=cut(question, SUGGESTION_LABEL_CHARS), text=f"[db:{database}] {question}")


async def _step(progress: Progress | None, step: Step) -> None:
    """Tell the surface where the question is; a surface that cannot show it never stops the answer."""
    if progress is None:
        return
    try:
        await progress(step)
    except Exception:
        log.warning("could not show a progress step", extra={"fields": {"step": step}}, exc_info=True)


def _audit_record(where: Where, **fields: Any) -> AuditRecord:
    """The audit row of something asked from ``where``."""
    return AuditRecord(
        platform=where.platform, workspace=where.workspace, channel=where.channel, user_id=where.user_id, **fields
    )


def _validate_question(question: str) -> str:
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
