"""The assistant: one chat message in, one reply out, the audit row written first.

A thin facade over the core's pieces: the grammar (``bot.core.grammar``), a question's flow
(``bot.core.question``), the admin commands (``bot.core.admin``), explanations and charts.
Every public operation is async; every database call goes through the core's interfaces
(``bot.core.ports``), whose real implementations run it off the event loop, so a chat
server stays free to acknowledge other requests.

In a thread (``Where.thread``), a question is a follow-up of the thread's last answer: it
keeps that database and the model sees the earlier question and SQL. A worker that is
cold-starting is waited for (up to ``warmup_wait_s``) after telling the user through
``notify`` that the answer will follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from bot.core import charts, explain, inputs
from bot.core.admin import AdminDesk, run_admin
from bot.core.config import AssistantConfig, Services
from bot.core.grammar import Admin, Ask, Command, Databases, Empty, Help, Use, parse
from bot.core.ports import BotState, Catalog
from bot.core.question import Asked, QuestionFlow, Stopped, allowed_entry, validate_question
from bot.core.text import clean_text, cut, one_line
from bot.core.types import (
    Answer,
    AuditEntry,
    AuditRecord,
    Notify,
    Option,
    PreviewReply,
    Progress,
    Rating,
    Reply,
    Step,
    ThreadTurn,
    Where,
)
from bot.metrics import BotMetrics
from chat2sql import errors, messages
from chat2sql.log import request_id
from chat2sql.redact import redact
from chat2sql.tokens import reject_control_tokens
from chat2sql.tracing import Tracer
from schemas import guard
from schemas.preview import ReadOnlyRunner, run_checked
from schemas.registry import RegisteredDatabase

if TYPE_CHECKING:
    from bot.store import BotStore
    from schemas.registry import Registry
from schemas.render import render_schema

__all__ = [
    "Answer",
    "Assistant",
    "AssistantConfig",
    "Notify",
    "Option",
    "PreviewReply",
    "Progress",
    "Reply",
    "Step",
    "error_reply",
]

log = logging.getLogger(__name__)

SUGGESTION_LABEL_CHARS = 75  # a suggested prompt's title in Slack's assistant panel


def error_reply(err: Exception) -> Reply:
    """What the user sees of an error: its sentence (``messages.user_message``) and its kind."""
    if isinstance(err, errors.Chat2SQLError):
        return Reply(kind="error", text=messages.user_message(err), error_kind=type(err).__name__)
    return Reply(kind="error", text=messages.user_message(Exception()), error_kind="internal")


class Assistant:
    def __init__(self, services: Services, config: AssistantConfig, *, desk: AdminDesk | None = None) -> None:
        self._s = services
        self.config = config
        self._flow = QuestionFlow(services, config)
        self._desk = desk

    # Set by ``bot.state.assistant_over``: for the command line, the evaluation and tests, never
    # for an adapter (tests/test_architecture.py checks that no adapter reaches through the core).
    registry: Registry
    store: BotStore

    @property
    def metrics(self) -> BotMetrics:
        return self._s.metrics

    @property
    def tracer(self) -> Tracer:
        return self._s.tracer

    @property
    def state(self) -> BotState:
        return self._s.state

    @property
    def catalog(self) -> Catalog:
        return self._s.catalog

    async def close(self) -> None:
        await self._s.client.close()
        await self._s.limiter.close()
        await self._s.cache.close()
        await asyncio.to_thread(self._s.tracer.close)  # flushes spans: bounded by LANGFUSE_TIMEOUT
        await self._s.catalog.close()
        await self._s.state.close()

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
        command: Command = parse(text, known=set(await self._s.catalog.names()))
        match command:
            case Ask(database=db, question=question):
                return await self.ask(
                    question, where, database=db, notify=notify, progress=progress, preferred=preferred
                )
            case Use(database=db):
                return await self._use(db, where)
            case Databases():
                return Reply(kind="text", text=await self._databases(where))
            case Help() | Empty():
                return Reply(kind="text", text=messages.HELP)
            case Admin():
                return await self.admin(command, text, where)
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
        asked = Asked(
            text=question, where=where, database=database, preferred=preferred, notify=notify, progress=progress
        )
        started = time.perf_counter()
        failed: Reply | None = None
        attributes = self._s.tracer.attributes(
            user_id=f"{where.platform}:{where.user_id}",
            session_id=f"{where.platform}:{where.workspace}:{where.channel}:{where.thread}" if where.thread else None,
            platform=where.platform,
            workspace=where.workspace,
            channel=where.channel,
        )
        try:
            with attributes, self._s.tracer.observe("question", trace_id=trace_id, input=safe_question) as span:
                try:
                    trail = await self._flow.answer(asked)
                except Stopped as stop:
                    trail, failed = stop.trail, self._failed(stop, safe_question)
                    if failed.error_kind == "internal":
                        log.error("question failed", exc_info=stop.error)
                span.update(
                    output=trail.sql if failed is None else failed.text,
                    level="ERROR" if failed is not None else "DEFAULT",
                    metadata={
                        "database": trail.database,
                        "arm": trail.arm,
                        "error_kind": failed.error_kind if failed else None,
                    },
                )
        finally:
            request_id.reset(token)
        elapsed_s = time.perf_counter() - started
        error_kind = failed.error_kind if failed is not None else None
        self._s.metrics.question_seconds.observe(elapsed_s)
        self._s.metrics.questions.labels(error_kind or "answer").inc()
        if error_kind:
            self._s.metrics.errors.labels(error_kind).inc()
        latency_ms = round(elapsed_s * 1000, 1)
        audit_id = await self._s.state.record(
            audit_record(
                where,
                question=safe_question,
                trace_id=trace_id,
                database=trail.database,
                sql=trail.sql,
                guard_verdict=trail.verdict,
                latency_ms=latency_ms,
                cache_hit=trail.cache_hit,
                error_kind=error_kind,
                adapter=trail.adapter,
                arm=trail.arm,
            )
        )
        if failed is not None:
            return failed
        assert trail.database is not None and trail.sql is not None
        turn = ThreadTurn(database=trail.database, question=trail.question, sql=trail.sql, audit_id=audit_id)
        await self._s.state.remember_turn(where, turn)
        answer = Answer(
            sql=trail.sql,
            database=trail.database,
            warnings=trail.warnings,
            latency_ms=latency_ms,
            cache_hit=trail.cache_hit,
            trace_id=trace_id,
            audit_id=audit_id,
            adapter=trail.adapter,
        )
        return Reply(kind="answer", text=trail.sql, answer=answer)

    def _failed(self, stop: Stopped, question: str) -> Reply:
        """A question's error reply, with the buttons that help ask again."""
        reply = error_reply(stop.error)
        options = stop.trail.options
        if not options and isinstance(stop.error, errors.NeedDatabase):
            options = tuple(Option(label=c, text=f"[db:{c}] {question.strip()}") for c in stop.error.choices)
        text = reply.text
        if reply.error_kind == "GuardRejected":
            text = f"{text} {messages.GUARD_FAILED_TWICE if stop.trail.options else messages.REPHRASE}"
        return Reply(kind="error", text=text, error_kind=reply.error_kind, options=options)

    # --- own SQL and previews ---------------------------------------------------------------

    async def check_sql(self, database: str, sql: str, where: Where) -> tuple[RegisteredDatabase, guard.GuardResult]:
        """Someone's own SQL through the guard, against the database as the model sees it
        (a hidden column is unknown here too); UnknownDatabase, NotAllowedHere."""
        entry = await self._model_view(await self.allowed_entry(database, where))
        return entry, await asyncio.to_thread(guard.check, sql, entry.schema, allowed_functions=entry.allowed_functions)

    async def preview_sql(self, database: str, sql: str, where: Where) -> PreviewReply:
        """Someone's own SQL through the guard and the read-only preview, as an answer's is:
        the audit row (platform, database, the SQL as sent) is written first, then previewed."""
        entry = await self.allowed_entry(database, where)  # UnknownDatabase, NotAllowedHere
        audit_id = await self._s.state.record(
            audit_record(
                where,
                database=entry.name,
                question=messages.OWN_SQL_QUESTION,
                sql=clean_text(sql),
                latency_ms=0.0,
                trace_id=uuid.uuid4().hex,
            )
        )
        return await self.preview(audit_id, where)

    async def preview(self, audit_id: int, where: Where) -> PreviewReply:
        """Run an answer's SQL through the guard and the read-only preview."""
        state = self._s.state
        answered = await state.get(audit_id)
        if answered is None or answered.sql is None or answered.database is None:
            return PreviewReply(ok=False, text=messages.PREVIEW_GONE, error_kind="unknown_answer")
        started = time.perf_counter()
        with self._s.tracer.observe("preview", trace_id=answered.trace_id, input=answered.sql) as span:
            try:
                entry = await self._model_view(await self.allowed_entry(answered.database, where))
                url = await self._s.catalog.connection_url(entry.name)
                out = await asyncio.to_thread(self._run, entry, url, answered.sql)
            except errors.Chat2SQLError as err:
                out = {"ok": False, "reason": messages.user_message(err), "rule": type(err).__name__}
            self._s.metrics.preview_seconds.observe(time.perf_counter() - started)
            if not out["ok"]:
                span.update(level="ERROR", status_message=str(out.get("rule")))
                if out.get("rule") not in ("NotAllowedHere", "UnknownDatabase"):  # someone else's click
                    await state.set_preview_error(audit_id, str(out.get("rule")))
                return PreviewReply(
                    ok=False, text=str(out.get("reason")), sql=answered.sql, error_kind=str(out.get("rule"))
                )
            span.update(output={"rows": len(out["rows"]), "truncated": bool(out["truncated"])})
        await state.set_preview_rows(audit_id, len(out["rows"]))
        return PreviewReply(
            ok=True,
            text="",
            columns=tuple(out["columns"]),
            rows=tuple(tuple(r) for r in out["rows"]),
            truncated=bool(out["truncated"]),
            elapsed_ms=float(out["elapsed_ms"]),
            sql=str(out["normalized"]),
        )

    def _run(self, entry: RegisteredDatabase, url: str, sql: str) -> dict[str, Any]:
        runner = ReadOnlyRunner(url=url, allowed_functions=entry.allowed_functions)
        try:
            return run_checked(
                sql,
                entry.schema,
                runner,
                max_rows=self.config.preview_max_rows,
                timeout_s=self.config.preview_timeout_s,
                allowed_functions=entry.allowed_functions,
            )
        finally:
            runner.close()

    async def explain(self, audit_id: int, where: Where) -> Reply:
        """The explanation of an answer, for someone allowed to see its database here."""
        answered = await self._s.state.get(audit_id)
        if answered is None or answered.sql is None or answered.database is None:
            return Reply(kind="error", text=messages.EXPLAIN_GONE, error_kind="unknown_answer")
        try:
            entry = await self.allowed_entry(answered.database, where)
        except errors.Chat2SQLError as err:
            return error_reply(err)
        glossary = await self._s.catalog.glossary(answered.database)
        text = await asyncio.to_thread(explain.explanation, answered, entry.schema.dialect, glossary)
        return Reply(kind="text", text=text)

    async def chart(self, audit_id: int, where: Where, *, max_bytes: int | None = None) -> charts.ChartReply:
        """Run the answer's preview (with its access checks) and draw it, if it has a chart's shape."""
        return await charts.chart(await self.preview(audit_id, where), max_bytes=max_bytes)

    # --- feedback ---------------------------------------------------------------------------

    async def feedback(self, audit_id: int, where: Where, rating: Rating, corrected_sql: str | None = None) -> Reply:
        state = self._s.state
        try:
            await state.add_feedback(
                audit_id=audit_id, user_id=where.user_id, rating=rating, corrected_sql=corrected_sql
            )
        except errors.Chat2SQLError as err:
            return error_reply(err)
        answered = await state.get(audit_id)
        note = ""
        if answered is not None:
            value = 1.0 if rating == "up" else 0.0
            self._s.tracer.score(trace_id=answered.trace_id, name="user_feedback", value=value, comment=corrected_sql)
            note = await self._keep_example(answered, where, rating, corrected_sql)
        return Reply(kind="text", text=messages.feedback_thanks(rating) + note)

    async def _keep_example(self, answered: AuditEntry, where: Where, rating: str, corrected_sql: str | None) -> str:
        """Admins' 👍 answers and admins' corrections become verified examples of their database.

        Examples go into everyone's prompts, so anyone else's rating is feedback only (the audit
        row and the trace score): one user must not be able to teach the model for all.
        """
        if answered.database is None or answered.database not in await self._s.catalog.names():
            return ""
        database = await self._s.catalog.get(answered.database)
        admin = self._s.admins.allows(where.platform, where.user_id)
        if rating == "up" and answered.sql and answered.error_kind is None:
            if not admin:
                return ""
            sql = answered.sql
        elif rating == "down" and corrected_sql:
            if not admin:
                return messages.EXAMPLE_FOR_ADMINS
            sql = corrected_sql.strip().rstrip(";").strip()
            verdict = await asyncio.to_thread(
                guard.check, sql, database.schema, allowed_functions=database.allowed_functions
            )
            if not verdict.ok:
                return messages.example_refused(f"{verdict.rule}: {verdict.reason}")
        else:
            return ""
        try:  # it would go into every similar question's prompt
            reject_control_tokens(answered.question)
            reject_control_tokens(sql)
        except ValueError as err:
            return messages.example_refused(str(err))
        await self._s.state.add_example(
            database=database.name,
            question=answered.question,
            sql=sql,
            source="thumbs_up" if rating == "up" else "correction",
            created_by=f"{where.platform}:{where.user_id}",
            schema_hash=database.schema_hash,
            audit_id=answered.id,
        )
        return messages.example_kept(database.name)

    # --- what may be asked here -------------------------------------------------------------

    async def schema_text(self, database: str, where: Where, *, question: str | None = None) -> str:
        """The schema as the model sees it (hidden columns left out); with ``question``, the
        tables that question's prompt would keep within the schema budget, and the notes the
        model would get beside them (glossary entries, the columns holding its values)."""
        entry = await self.allowed_entry(database, where)
        glossary = await self._glossary(entry.name)
        entry = inputs.model_view(entry, glossary)
        if question is None:
            return await asyncio.to_thread(render_schema, entry.schema)
        question = validate_question(question)
        index = await self._s.catalog.value_index(entry.name) if self.config.value_links else None
        notes = await asyncio.to_thread(inputs.notes_for, entry, glossary, question, index)
        text = await asyncio.to_thread(
            lambda: render_schema(
                entry.schema, question=question, max_tokens=self.config.schema_budget_tokens, linked=notes.linked
            )
        )
        return "\n".join([text, *(f"-- {hint}" for hint in notes.hints)])

    async def allowed_entry(self, name: str, where: Where) -> RegisteredDatabase:
        """A registered database that may be used from ``where`` (UnknownDatabase, NotAllowedHere)."""
        return await allowed_entry(self._s, name, where)

    async def database_names(self) -> tuple[str, ...]:
        """Every registered database's name (whether usable here or not)."""
        return await self._s.catalog.names()

    async def usable_databases(self, where: Where) -> list[RegisteredDatabase]:
        """The registered databases that may be used from ``where``."""
        return [e for e in await self._s.catalog.entries() if await self._s.state.is_allowed(e.name, where)]

    async def channel_default(self, where: Where) -> str | None:
        """The database ``where``'s channel asks by default, while it is registered (whether it
        may be used from a given place is the resolution's check)."""
        default = await self._s.state.default(where)
        return default if default in await self._s.catalog.names() else None

    async def answered_database(self, audit_id: int) -> str | None:
        """The database an answer was asked of (None: no such answer)."""
        answered = await self._s.state.get(audit_id)
        return answered.database if answered is not None else None

    async def follows_up(self, where: Where) -> bool:
        """Whether a question from ``where`` would follow up an earlier answer in its thread."""
        return bool(where.thread) and await self._s.state.last_turn(where) is not None

    async def claim(self, key: str) -> bool:
        """True the first time a delivery ``key`` is claimed (across replicas), False for a repeat."""
        return await self._s.state.claim(key)

    async def suggested_prompts(self, where: Where, *, limit: int = 4) -> tuple[Option, ...]:
        """First questions to offer ``where.user_id``: verified examples (an admin's, or from the
        user's own questions) of the databases they use most, then a simple question about each
        other usable database. Never another user's question."""
        state = self._s.state
        usable = {e.name: e for e in await self.usable_databases(where)}
        ranked = [name for name in await state.most_used_databases(where) if name in usable]
        ranked += [name for name in usable if name not in ranked]
        chosen: dict[str, Option] = {}  # by the text it sends: each once, in order
        for name in ranked:
            for example in await state.shareable_examples(name, where, limit=limit - len(chosen)):
                option = _suggestion(name, example.question)
                chosen.setdefault(option.text, option)
            if len(chosen) >= limit:
                return tuple(chosen.values())[:limit]
        for name in ranked:
            tables = (await self._model_view(usable[name])).schema.tables  # never a hidden table
            if tables:  # the plainest name reads best in a sentence: "How many rows does orders have?"
                plain = min(tables, key=lambda t: (not t.name.isalpha(), len(t.name), t.name))
                option = _suggestion(name, messages.suggested_count(plain.name))
                chosen.setdefault(option.text, option)
            if len(chosen) >= limit:
                break
        return tuple(chosen.values())[:limit]

    async def start_over(self, where: Where, database: str | None) -> None:
        """The surface's context moved to ``database`` (Slack: the user views another channel): a
        thread whose last answer used another database starts over, so its next question asks
        ``database`` instead of following up."""
        turn = await self._s.state.last_turn(where)
        if turn is not None and database is not None and turn.database != database:
            await self._s.state.forget_turn(where)

    async def _use(self, name: str, where: Where) -> Reply:
        try:
            await self.allowed_entry(name, where)
        except errors.Chat2SQLError as err:
            return error_reply(err)
        await self._s.state.set_default(where, name)
        return Reply(kind="text", text=messages.default_set(name))

    async def _databases(self, where: Where) -> str:
        entries = await self.usable_databases(where)
        if not entries:
            return messages.no_databases_here()
        default = await self._s.state.default(where)
        return messages.databases_here(
            [(e.name, e.dialect, len(e.schema.tables), one_line(e.description), e.name == default) for e in entries]
        )

    async def _glossary(self, name: str) -> tuple[Any, ...]:
        return await self._s.catalog.glossary(name) if self.config.glossary else ()

    async def _model_view(self, entry: RegisteredDatabase) -> RegisteredDatabase:
        return inputs.model_view(entry, await self._glossary(entry.name))

    # --- admin ------------------------------------------------------------------------------

    async def admin(self, command: Admin, text: str, where: Where) -> Reply:
        """An admin command from ``where``: refused for anyone not an admin; audited either way
        (the text redacted: a registration's URL carries its password)."""
        # Arguments, a registration's description and the audit row: no NUL, escapes or bidi controls.
        text = clean_text(text)
        command = Admin(command.action, tuple(clean_text(arg) for arg in command.args))
        if not self._s.admins.allows(where.platform, where.user_id):
            reply = error_reply(errors.AdminOnly())
        elif self._desk is None:
            reply = error_reply(errors.UnknownCommand(messages.ADMIN_USAGE))
        else:
            try:
                reply = Reply(kind="text", text=await run_admin(self._desk, command, where, text))
            except errors.Chat2SQLError as err:
                reply = error_reply(err)
        await self._s.state.record(
            audit_record(
                where,
                database=command.args[0] if command.args else None,
                question=redact(text),
                error_kind=reply.error_kind,
                trace_id=uuid.uuid4().hex[:16],
            )
        )
        return reply


def audit_record(where: Where, *, question: str, trace_id: str, **fields: Any) -> AuditRecord:
    """The audit row of something asked from ``where``: the one builder of every audit row."""
    return AuditRecord(
        platform=where.platform,
        workspace=where.workspace,
        channel=where.channel,
        user_id=where.user_id,
        question=question,
        trace_id=trace_id,
        **fields,
    )


def _suggestion(database: str, question: str) -> Option:
    question = one_line(question)
    return Option(label=cut(question, SUGGESTION_LABEL_CHARS), text=f"[db:{database}] {question}")
