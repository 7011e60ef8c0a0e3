"""Evaluation harness over a Spider-format set, through the production question flow.

``python -m inference.eval --data DIR [--limit N] [--out FILE] [--config SPEC]
[--compare SPEC_A SPEC_B] [--inference local|worker|openai] [--replay REPORT]``

DIR holds ``dev.json`` (items with ``db_id``, ``question``, ``query`` and optionally
``difficulty`` or Spider's ``hardness``; without either, Spider's own rules grade the gold
query: ``evals.metrics.hardness``), ``tables.json``,
``database/<db_id>/<db_id>.sqlite`` and optionally ``glossary.json`` (a list of
``{"db_id", "kind", "name", "definition"}``). Each configuration gets its own throw-away
registry and bot state in a temporary folder, built from defaults alone: no environment
setting (registry URL, data folder, Redis, tracing) reaches it, so the configured registry
and bot state are never touched. Every question goes through
``bot.core.assistant.Assistant.ask``: the same prompt format, schema rendering within the
budget, guard, validation run and one retry on a guard or database error as in chat. The
harness only watches the inference client. A data set or configuration it cannot use is one
``error:`` line and exit status 2.

A configuration (``SPEC``) is a JSON or YAML file or an inline ``key=value,key=value`` list
with the keys ``name``, ``adapter``, ``prompt_format``, ``schema_budget``, ``retry``,
``examples``, ``clarify``, ``values``, ``glossary``, ``repairs`` and ``regroup`` (on/off), ``candidates`` (sampled
candidates beside the greedy answer, 0 to 8) and ``temperature`` (of those, above 0, at most
2); unset keys come from the settings, as in the bot.
``retry=off`` turns off the assistant's one automatic retry. ``examples=on`` gives the
assistant the set's other questions of the same database as verified examples
(leave-one-out: a question never sees its own gold SQL). ``clarify=on`` lets it ask back
when a question matches nothing in the schema; the clarification rate is reported.
``values=off`` stops telling the model which columns hold the values a question names;
``repairs=off`` leaves out the schema repairs of candidates that all named unknown columns;
``regroup=off`` the grouped versions of candidates that aggregate without GROUP BY;
``glossary=off`` leaves the data set's glossary out (with it on, every ``glossary.json`` entry
is defined in that configuration's registry before its run).
``--replay REPORT`` answers from the model answers an earlier report recorded instead of
a model (``evals.replay``): what changed after the model, measured in minutes.
``--recall BUDGET,...`` also reports, per schema token budget, the share of the gold
queries' tables that the budgeted schema keeps (no model needed).

Reported, overall and by difficulty: execution accuracy (``evals.metrics``:
Spider's result comparison), the seed's normalized exact match, valid-SQL rate (the
guard accepted the final SQL and the database ran it), no-answer rate (the user got no
SQL: an error or a clarifying question), retry rate, clarification rate, latency p50/p99
(end to end per question), tokens and the distinct SQL texts (greedy and sampled) per
question. ``--compare`` adds McNemar's paired test on execution accuracy;
``python -m inference.eval_compare A.json B.json`` pairs two saved reports. ``--out FILE``
writes JSON to FILE and Markdown beside it (``FILE`` with ``.md``); without it the Markdown
goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.core.access import Admins
from bot.core.assistant import Assistant, AssistantConfig
from bot.core.text import one_line
from bot.core.types import Where
from bot.state import assistant_over
from bot.store import BotStore
from chat2sql import errors, messages
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter, Limit
from chat2sql.settings import Settings
from evals.data import (
    GLOSSARY_FILE,
    EvalConfig,
    EvalError,
    Example,
    GlossaryItem,
    database_path,
    load_dataset,
    load_glossary,
    read_json,
)
from evals.metrics import (
    exact_match,
    execution_match,
    normalize_sql,
)
from evals.replay import Recording, ReplayClient, ReplayError
from evals.report import ItemResult, markdown, report, write_reports
from inference.client import InferenceClient
from inference.protocol import DatabaseInfo, GenerateRequest, GenerateResponse
from schemas.glossary import GlossaryUnchanged
from schemas.registry import NAME_PATTERN, Registry

# The guard appends LIMIT preview_max_rows; far above any gold result, so it never cuts one.
EVAL_MAX_ROWS = 100_000
EXEC_TIMEOUT_S = 30.0
_UNLIMITED = Limit(1_000_000.0, 1_000_000)

# --- running ------------------------------------------------------------------------------


class _Recorder:
    """The client the assistant sees: the real one, watched. With retry off, a retry
    request gets the first answer back (the assistant then gives up as it would have)."""

    def __init__(self, client: InferenceClient, *, retry: bool) -> None:
        self._client, self._retry = client, retry
        self.responses: list[GenerateResponse] = []
        self.retry_asked = False

    @property
    def retried(self) -> bool:
        return self.retry_asked and self._retry

    def reset(self) -> None:
        self.responses, self.retry_asked = [], False

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        if request.previous is not None:
            self.retry_asked = True
            if not self._retry and self.responses:
                return self.responses[-1]
        response = await self._client.generate(request)
        self.responses.append(response)
        return response

    async def close(self) -> None:  # the harness owns the real client
        pass


Progress = Callable[[str], None]


class _IsolatedSettings(Settings):
    """Settings from the arguments and the defaults alone: no environment variable and no
    ``.env`` file, so a configured registry URL, data folder, secret key, Redis or tracing
    cannot reach the harness's throw-away state."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def isolated_settings(folder: Path) -> Settings:
    """Settings whose registry and bot state are an SQLite file in ``folder``, whatever the
    environment says."""
    settings = _IsolatedSettings(data_dir=folder)
    assert settings.uses_embedded_registry and settings.redis_url is None
    return settings


async def evaluate(
    examples: Sequence[Example],
    *,
    data: Path,
    client: InferenceClient,
    configs: Sequence[EvalConfig],
    progress: Progress | None = None,
) -> list[list[ItemResult]]:
    """Every example under every configuration, through one ``Assistant`` per configuration.

    Each configuration has its own registry and bot state (a folder of one temporary
    directory): its glossary and verified examples are its own, and nothing outlives the run."""
    gold = {i: _execute(database_path(data, e.db_id), e.query) for i, e in enumerate(examples)}
    db_ids = sorted({e.db_id for e in examples})
    glossary = [g for g in load_glossary(data) if g.db_id in db_ids]
    with tempfile.TemporaryDirectory(prefix="chat2sql-eval-") as work:
        runs = []
        for number, config in enumerate(configs):
            settings = isolated_settings(Path(work) / f"run-{number}")
            registry, store = Registry.open(settings), BotStore.open(settings)
            try:
                names = {db_id: _register(registry, data, db_id) for db_id in db_ids}
                if config.glossary:
                    define_glossary(registry, glossary, names)
                runs.append(await _run_config(config, examples, registry, store, client, names, data, gold, progress))
            finally:
                registry.close()
                store.close()
        return runs


async def _run_config(
    config: EvalConfig,
    examples: Sequence[Example],
    registry: Registry,
    store: BotStore,
    client: InferenceClient,
    names: dict[str, str],
    data: Path,
    gold: dict[int, list[tuple[Any, ...]] | str],
    progress: Progress | None,
) -> list[ItemResult]:
    recorder = _Recorder(client, retry=config.retry)
    assistant = assistant_over(
        registry=registry,
        store=store,
        client=recorder,
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse(""),
        config=AssistantConfig(
            user_limit=_UNLIMITED,
            workspace_limit=_UNLIMITED,
            cache_ttl_s=0,
            schema_budget_tokens=config.schema_budget,
            preview_max_rows=EVAL_MAX_ROWS,
            adapter=config.adapter,
            prompt_format=config.prompt_format,
            retry=config.retry,
            clarify=config.clarify,
            examples_k=3 if config.examples else 0,
            candidates=config.candidates,
            temperature=config.temperature,
            value_links=config.values,
            schema_repairs=config.repairs,
            grouping_repairs=config.regroup,
            glossary=config.glossary,
        ),
    )
    own = _add_examples(registry, store, examples, names, gold) if config.examples else {}
    results = []
    for index, example in enumerate(examples):
        hidden = _hide(store, registry, own.get(index), names[example.db_id])
        result = await _one(assistant, recorder, index, example, names[example.db_id], data, gold[index])
        _unhide(store, hidden, registry, names[example.db_id])
        results.append(result)
        if progress is not None:
            progress(_progress_line(config, result, len(examples)))
    return results


def define_glossary(registry: Any, entries: Sequence[GlossaryItem], names: dict[str, str]) -> int:
    """Each entry defined in ``registry`` (``registry.glossary.define``) under its database's
    registered name; the number defined. The same definition twice is one entry."""
    defined = 0
    for entry in entries:
        try:
            registry.glossary.define(names[entry.db_id], entry.kind, entry.name, entry.definition, by="eval")
        except GlossaryUnchanged:
            continue
        except errors.Chat2SQLError as err:
            raise EvalError(
                f"{GLOSSARY_FILE}: {entry.db_id} {entry.kind or 'entry'} {entry.name!r}: "
                f"{one_line(messages.user_message(err))}"
            ) from None
        defined += 1
    return defined


def _add_examples(
    registry: Registry,
    store: BotStore,
    examples: Sequence[Example],
    names: dict[str, str],
    gold: dict[int, list[tuple[Any, ...]] | str],
) -> dict[int, int]:
    """Every question with a runnable gold query becomes a verified example; index → example id."""
    ids: dict[int, int] = {}
    for index, example in enumerate(examples):
        if isinstance(gold[index], str):
            continue
        entry = registry.get(names[example.db_id])
        ids[index] = store.add_example(
            database=entry.name,
            question=example.question,
            sql=example.query,
            source="admin",
            created_by="eval",
            schema_hash=entry.schema_hash,
        )
    return ids


def _hide(store: BotStore, registry: Registry, example_id: int | None, name: str) -> int | None:
    """Leave-one-out: the question's own example is set aside while it is asked."""
    if example_id is not None:
        store.set_example_status(
            example_id, status="set_aside", reason="eval", schema_hash=registry.get(name).schema_hash
        )
    return example_id


def _unhide(store: BotStore, example_id: int | None, registry: Registry, name: str) -> None:
    if example_id is not None:
        store.set_example_status(example_id, status="active", reason=None, schema_hash=registry.get(name).schema_hash)


def schema_recall(examples: Sequence[Example], data: Path, budgets: Sequence[int]) -> dict[str, Any]:
    """Per schema budget (tokens): the share of gold-query tables the budgeted schema keeps,
    over all (question, table) pairs, and the share of questions that keep every table."""
    import sqlglot
    from sqlglot import exp

    from schemas.introspect import introspect_url
    from schemas.render import render_table

    schemas = {
        db_id: introspect_url(f"sqlite:///{database_path(data, db_id).resolve()}")
        for db_id in sorted({e.db_id for e in examples})
    }
    out: dict[str, Any] = {}
    for budget in budgets:
        kept = needed = complete = 0
        for example in examples:
            schema = schemas[example.db_id]
            ctes = {c.alias_or_name.lower() for c in sqlglot.parse_one(example.query, read="sqlite").find_all(exp.CTE)}
            tables = {
                t.name.lower() for t in sqlglot.parse_one(example.query, read="sqlite").find_all(exp.Table)
            } - ctes
            rendered = render_schema_tables(schema, example.question, budget, render_table)
            hit = tables & rendered
            kept, needed = kept + len(hit), needed + len(tables)
            complete += hit == tables
        out[str(budget)] = {
            "table_recall": round(kept / needed, 4) if needed else None,
            "questions_complete": round(complete / len(examples), 4) if examples else None,
        }
    return out


def render_schema_tables(schema: Any, question: str, budget: int, render_table: Any) -> set[str]:
    """The tables (lowercased) that the budgeted schema text shows."""
    from schemas.render import render_schema

    text = render_schema(schema, question=question, max_tokens=budget)
    return {t.name.lower() for t in schema.tables if render_table(t, schema) in text}


def _db_name(db_id: str) -> str:
    """A registrable name for a Spider ``db_id``."""
    name = db_id.lower() if NAME_PATTERN.fullmatch(db_id.lower()) else "db_" + re.sub(r"[^a-z0-9_]", "_", db_id.lower())
    return name[:63]


def _register(registry: Registry, data: Path, db_id: str) -> str:
    name = _db_name(db_id)
    try:
        registry.add(name, f"sqlite:///{database_path(data, db_id).resolve()}", registered_by="eval")
    except errors.Chat2SQLError as err:
        raise EvalError(
            f"cannot register {database_path(data, db_id)}: {one_line(messages.user_message(err))}"
        ) from None
    return name


async def _one(
    assistant: Assistant,
    recorder: _Recorder,
    index: int,
    example: Example,
    name: str,
    data: Path,
    gold: list[tuple[Any, ...]] | str,
) -> ItemResult:
    recorder.reset()
    where = Where(platform="eval", workspace="eval", channel=f"q{index}", user_id="eval")
    started = time.perf_counter()
    reply = await assistant.ask(example.question, where, database=name)
    latency_ms = (time.perf_counter() - started) * 1000
    audit = (await asyncio.to_thread(assistant.store.audit, limit=1))[0]
    responses = recorder.responses
    final = responses[-1].sql if responses else None
    answer_sql = reply.answer.sql if reply.answer is not None else None
    matched, exec_error = False, None
    given = {normalize_sql(sql) for r in responses for sql in (r.sql, *r.candidates) if sql.strip()}
    if answer_sql is not None:
        predicted = await asyncio.to_thread(_execute, database_path(data, example.db_id), answer_sql)
        if isinstance(predicted, str):
            exec_error = predicted
        elif not isinstance(gold, str):
            matched = execution_match(predicted, gold, order_matters="order by" in example.query.lower())
    return ItemResult(
        index=index,
        db_id=example.db_id,
        difficulty=example.difficulty,
        question=example.question,
        gold=example.query,
        sql=final,
        answer_sql=answer_sql,
        verdict=audit.guard_verdict,
        error_kind=reply.error_kind,
        valid=reply.kind == "answer" and exec_error is None,
        execution_match=matched,
        exact_match=final is not None and exact_match(final, example.query),
        retried=recorder.retried,
        clarified=bool(reply.options) and reply.error_kind in ("Unmatched", "GuardRejected", "NeedDatabase"),
        model_calls=len(responses),
        latency_ms=round(latency_ms, 1),
        generation_ms=round(sum(r.latency_ms for r in responses), 1),
        prompt_tokens=sum(r.prompt_tokens for r in responses),
        completion_tokens=sum(r.completion_tokens for r in responses),
        exec_error=exec_error,
        candidates=len(given),
        problem=None if reply.kind == "answer" else one_line(reply.text)[:500],
        attempts=[[r.sql, *r.candidates] for r in responses],
    )


def _execute(path: Path, sql: str) -> list[tuple[Any, ...]] | str:
    """All rows on a read-only connection with a time limit, or the error as text."""
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    deadline = time.monotonic() + EXEC_TIMEOUT_S
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        return [tuple(row) for row in conn.execute(sql).fetchall()]
    except sqlite3.Error as err:
        return f"{type(err).__name__}: {err}"
    finally:
        conn.close()


def _progress_line(config: EvalConfig, r: ItemResult, total: int) -> str:
    mark = "EX" if r.execution_match else ("ok" if r.valid else (r.verdict or r.error_kind or "error"))
    line = f"[{config.name} {r.index + 1}/{total}] {mark:<14} {r.latency_ms / 1000:6.1f} s  {r.question[:60]}"
    return line if r.problem is None else f"{line}\n    {r.problem[:300]}"


# --- command line -----------------------------------------------------------------------------


async def _warm_up(client: InferenceClient, config: EvalConfig, db_name: str) -> None:
    """One untimed request, so that loading the model is not counted as the first question's latency."""
    await client.generate(
        GenerateRequest(
            question="How many rows are there?",
            database=DatabaseInfo(name=db_name),
            adapter=config.adapter,
            prompt_format=config.prompt_format,
        )
    )


async def _main(args: argparse.Namespace) -> int:
    from bot.wiring import inference_client

    settings = Settings().model_copy(update={"inference": args.inference})
    base = EvalConfig.from_settings(settings)
    specs = args.compare or ([args.config] if args.config else [])
    configs = [base.updated(spec) for spec in specs] or [base]
    examples = load_dataset(args.data, limit=args.limit)
    load_glossary(args.data)  # its errors before the model loads
    budgets = _budgets(args.recall)
    if args.recall_only:
        recall = {"data": str(args.data), "questions": len(examples), "elapsed_s": 0.0, "runs": [],
                  "schema_recall": schema_recall(examples, args.data, budgets or [base.schema_budget])}  # fmt: skip
        print(markdown(recall), end="")
        return 0
    replay = _replay_client(args.replay) if args.replay is not None else None
    if replay is not None:
        try:
            replay.check_covers((_db_name(e.db_id), e.question) for e in examples)
        except ReplayError as err:
            raise EvalError(f"cannot replay {args.replay}: {err}") from None
    client = replay or inference_client(settings)
    try:
        started = time.perf_counter()
        if replay is None:
            await _warm_up(client, configs[0], _db_name(examples[0].db_id))
        runs = await evaluate(
            examples,
            data=args.data,
            client=client,
            configs=configs,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        elapsed = time.perf_counter() - started
    except ReplayError as err:
        raise EvalError(f"cannot replay {args.replay}: {err}") from None
    finally:
        await client.close()
    result = report(data=args.data, configs=configs, runs=runs, elapsed_s=elapsed)
    if replay is not None:
        result["replay"] = {"report": str(args.replay), "unrecorded_calls": replay.unrecorded}
    if budgets:
        result["schema_recall"] = schema_recall(examples, args.data, budgets)
    if args.out is not None:
        md = write_reports(result, args.out)
        print(f"wrote {args.out} and {md}", file=sys.stderr)
    else:
        print(markdown(result), end="")
    return 0


_RECORDED = ("db_id", "question", "attempts")


def _replay_client(path: Path) -> ReplayClient:
    """The recorded answers of ``path``'s first run."""
    saved = read_json(path)
    runs = saved.get("runs") if isinstance(saved, dict) else None
    if not runs or not isinstance(runs[0], dict) or not isinstance(runs[0].get("items"), list):
        raise EvalError(f"{path} is not a report of python -m inference.eval (no runs with items)")
    recordings = []
    for number, item in enumerate(runs[0]["items"]):
        db_id, question, attempts = (item.get(k) if isinstance(item, dict) else None for k in _RECORDED)
        if not isinstance(db_id, str) or not isinstance(question, str):
            raise EvalError(f"{path}: item {number} lacks a db_id and a question")
        if attempts is not None and not (
            isinstance(attempts, list)
            and all(isinstance(a, list) and a and all(isinstance(sql, str) for sql in a) for a in attempts)
        ):
            raise EvalError(f"{path}: item {number}'s attempts are not lists of SQL texts")
        recordings.append(Recording(_db_name(db_id), question, attempts or []))
    try:
        return ReplayClient(recordings)
    except ReplayError as err:
        raise EvalError(f"cannot replay {path}: {err}") from None


def _budgets(spec: str | None) -> list[int]:
    if not spec:
        return []
    try:
        budgets = [int(b) for b in spec.split(",")]
    except ValueError:
        raise EvalError(f"--recall takes token budgets such as 1500,400, not {spec!r}") from None
    if any(b < 1 for b in budgets):
        raise EvalError(f"--recall budgets must be at least 1, not {spec!r}")
    return budgets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Spider-format folder")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--out", type=Path, default=None, help="JSON report path (Markdown beside it)")
    parser.add_argument("--config", default=None, help="a configuration: file or key=value,... (default: settings)")
    parser.add_argument("--compare", nargs=2, metavar=("CONFIG_A", "CONFIG_B"), help="two configurations, paired")
    parser.add_argument("--inference", choices=("local", "worker", "openai"), default="local", help="backend")
    parser.add_argument(
        "--recall", default=None, help="schema budgets (tokens) for the table-recall table, e.g. 1500,400"
    )
    parser.add_argument("--replay", type=Path, default=None, help="answer from a report's recorded model answers")
    parser.add_argument("--recall-only", action="store_true", help="only the table-recall table (no model)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except EvalError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except ValidationError as err:  # the settings (environment, .env): name the first problem only
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        print(f"error: invalid setting {where}: {one_line(first['msg'])}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
