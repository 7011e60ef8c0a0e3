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
import json
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
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
from evals.metrics import (
    McNemar,
    exact_match,
    execution_match,
    hardness,
    mcnemar,
    normalize_sql,
    percentile,
)
from evals.replay import Recording, ReplayClient, ReplayError
from inference.client import InferenceClient
from inference.protocol import MAX_SAMPLES, DatabaseInfo, GenerateRequest, GenerateResponse
from schemas.glossary import GlossaryUnchanged
from schemas.registry import NAME_PATTERN, Registry

# The guard appends LIMIT preview_max_rows; far above any gold result, so it never cuts one.
EVAL_MAX_ROWS = 100_000
EXEC_TIMEOUT_S = 30.0
DIFFICULTY_ORDER = ("easy", "medium", "hard", "extra")
_UNLIMITED = Limit(1_000_000.0, 1_000_000)
_FLAGS = frozenset({"retry", "examples", "clarify", "values", "glossary", "repairs", "regroup"})
_CONFIG_KEYS = frozenset({"name", "adapter", "prompt_format", "schema_budget", "candidates", "temperature"}) | _FLAGS
GLOSSARY_FILE = "glossary.json"
_TRUE, _FALSE = frozenset({"on", "true", "yes", "1"}), frozenset({"off", "false", "no", "0"})


class EvalError(Exception):
    """A data set or configuration the harness cannot use (the CLI prints it and exits 2)."""


# --- data and configurations ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Example:
    db_id: str
    question: str
    query: str
    difficulty: str | None = None


@dataclass(frozen=True, kw_only=True)
class GlossaryItem:
    """One ``glossary.json`` entry, defined in the throw-away registry for ``glossary=on``."""

    db_id: str
    kind: str | None
    name: str
    definition: str


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    name: str = "default"
    adapter: str | None = None
    prompt_format: str = "schema"
    schema_budget: int = 1500
    retry: bool = True
    examples: bool = False
    clarify: bool = False
    candidates: int = 0
    temperature: float = 0.7
    values: bool = True
    glossary: bool = True
    repairs: bool = True
    regroup: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> EvalConfig:
        """The bot's configuration (``bot.wiring.assistant_config``), so a setting that the bot
        reads reaches the harness the same way."""
        from bot.wiring import assistant_config

        config = assistant_config(settings)
        return cls(
            adapter=config.adapter,
            prompt_format=config.prompt_format,
            schema_budget=config.schema_budget_tokens,
            candidates=config.candidates,
            temperature=config.temperature,
            values=config.value_links,
            glossary=config.glossary,
            repairs=config.schema_repairs,
            regroup=config.grouping_repairs,
        )

    def updated(self, spec: str) -> EvalConfig:
        """This configuration with the keys of ``spec`` (a file, or ``key=value,...``) changed.

        >>> EvalConfig().updated("prompt_format=seed, retry=off").retry
        False
        >>> EvalConfig().updated("candidates=4, temperature=0.5, values=off").candidates
        4
        """
        path = Path(spec)
        values: dict[str, Any]
        if path.suffix.lower() in (".json", ".yaml", ".yml") and "=" not in spec:
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
            except (OSError, ValueError) as err:
                raise EvalError(f"cannot read the configuration {spec}: {_reason(err)}") from None
            except yaml.YAMLError as err:
                raise EvalError(f"{spec} is not valid YAML or JSON: {one_line(str(err))}") from None
            if not isinstance(loaded, dict):
                raise EvalError(f"{spec}: a configuration file holds one mapping")
            values = {"name": path.stem, **loaded}
        else:
            values = {}
            for item in filter(None, (p.strip() for p in spec.split(","))):
                key, sep, value = item.partition("=")
                if not sep:
                    raise EvalError(f"{spec!r}: expected key=value pairs or a .json/.yaml file")
                values[key.strip()] = value.strip()
            values.setdefault("name", spec)
        unknown = {str(k) for k in values} - _CONFIG_KEYS
        if unknown:
            raise EvalError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return replace(self, **{k: _coerce(k, v) for k, v in values.items()})


def _coerce(key: str, value: Any) -> Any:
    if key in _FLAGS:
        text = str(value).lower()
        if text not in _TRUE | _FALSE:
            raise EvalError(f"{key} must be on or off, not {value!r}")
        return text in _TRUE
    if key == "schema_budget":
        return _number(key, value, int, low=1, high=None)
    if key == "candidates":
        return _number(key, value, int, low=0, high=MAX_SAMPLES)
    if key == "temperature":
        number = _number(key, value, float, low=None, high=2.0)
        if not number > 0:
            raise EvalError(f"temperature must be above 0 and at most 2, not {value!r}")
        return number
    if key == "adapter":
        return None if value in (None, "", "none", "default") else str(value)
    return str(value)


def _number(key: str, value: Any, kind: type[int] | type[float], *, low: float | None, high: float | None) -> Any:
    """``value`` as ``kind`` within [low, high], or an EvalError that says what is allowed."""
    bounds = (
        f"from {low} to {high}"
        if low is not None and high is not None
        else (f"at least {low}" if low is not None else f"at most {high}")
    )
    expected = f"{key} must be {'a whole number' if kind is int else 'a number'} {bounds}, not {value!r}"
    if isinstance(value, bool):  # YAML's on/off
        raise EvalError(expected)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise EvalError(expected) from None
    if kind is int and isinstance(value, float) and value != number:
        raise EvalError(expected)
    if number != number or (low is not None and number < low) or (high is not None and number > high):
        raise EvalError(expected)  # NaN too
    return number


def _reason(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, IsADirectoryError):
        return "it is a folder"
    if isinstance(err, OSError):
        return one_line(err.strerror or str(err))
    return one_line(str(err))


def read_json(path: Path) -> Any:
    """The content of a JSON file, or an EvalError that says in one line why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        raise EvalError(f"cannot read {path}: {_reason(err)}") from None
    try:
        return json.loads(text)
    except ValueError as err:
        raise EvalError(f"cannot read {path}: not valid JSON ({one_line(str(err))})") from None


def _known_databases(folder: Path) -> set[str]:
    """The ``db_id`` of every database ``tables.json`` describes."""
    path = folder / "tables.json"
    tables = read_json(path)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise EvalError(f"{path}: expected a list of database descriptions")
    known = set()
    for index, table in enumerate(tables):
        db_id = table.get("db_id")
        if not isinstance(db_id, str) or not db_id.strip():
            raise EvalError(f"{path} entry {index}: no db_id")
        known.add(db_id)
    return known


def _text_field(item: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = item.get(key)
    if value is None and optional:
        return None
    if value is None:
        raise EvalError(f"{where}: missing {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise EvalError(f"{where}: {key!r} must be non-empty text")
    return value


def load_dataset(folder: Path, *, limit: int | None = None) -> list[Example]:
    """The questions of ``folder`` (the first ``limit``), checked: every problem is one EvalError."""
    if limit is not None and limit < 1:
        raise EvalError(f"--limit must be at least 1, not {limit}")
    if not folder.is_dir():
        raise EvalError(f"cannot read {folder}: no such folder")
    dev = folder / "dev.json"
    items = read_json(dev)
    known = _known_databases(folder)
    if not isinstance(items, list):
        raise EvalError(f"{dev}: expected a list of questions")
    if not items:
        raise EvalError(f"{dev} has no questions")
    examples = []
    for index, item in enumerate(items[:limit]):
        where = f"{dev} item {index}"
        if not isinstance(item, dict):
            raise EvalError(f"{where}: expected an object with db_id, question and query")
        db_id, question, query = (_text_field(item, key, where) for key in ("db_id", "question", "query"))
        assert db_id is not None and question is not None and query is not None
        level = item.get("difficulty") or item.get("hardness") or None
        if level is not None and not isinstance(level, str):
            raise EvalError(f"{where}: 'difficulty' must be text such as easy, medium, hard or extra")
        if level is None:
            try:
                level = hardness(query)
            except ValueError:
                level = None  # gold SQL that sqlglot cannot read: counted in "all" only
        examples.append(Example(db_id=db_id, question=question, query=query, difficulty=level))
    for db_id in sorted({e.db_id for e in examples}):
        if db_id not in known:
            raise EvalError(f"{db_id} is not in {folder / 'tables.json'}")
        if not database_path(folder, db_id).is_file():
            raise EvalError(
                f"{database_path(folder, db_id)} is missing (the shipped set: python -m inference.eval_samples DIR)"
            )
    return examples


def load_glossary(folder: Path) -> list[GlossaryItem]:
    """``glossary.json`` of ``folder``, checked; empty when there is none."""
    path = folder / GLOSSARY_FILE
    if not path.exists():
        return []
    entries = read_json(path)
    if not isinstance(entries, list):
        raise EvalError(f"{path}: expected a list of entries")
    known = _known_databases(folder)
    out = []
    for index, entry in enumerate(entries):
        where = f"{path} entry {index}"
        if not isinstance(entry, dict):
            raise EvalError(f"{where}: expected an object with db_id, kind, name and definition")
        db_id, name = _text_field(entry, "db_id", where), _text_field(entry, "name", where)
        assert db_id is not None and name is not None
        kind = _text_field(entry, "kind", where, optional=True)
        definition = entry.get("definition", "" if kind == "hidden" else None)
        if not isinstance(definition, str) or (kind != "hidden" and not definition.strip()):
            raise EvalError(f"{where}: 'definition' must be non-empty text")
        if db_id not in known:
            raise EvalError(f"{where}: {db_id} is not in {folder / 'tables.json'}")
        out.append(GlossaryItem(db_id=db_id, kind=kind, name=name, definition=definition))
    return out


def database_path(folder: Path, db_id: str) -> Path:
    return folder / "database" / db_id / f"{db_id}.sqlite"


# --- running ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class ItemResult:
    index: int
    db_id: str
    difficulty: str | None
    question: str
    gold: str
    sql: str | None  # the model's final SQL, before the guard
    answer_sql: str | None  # what the user would get: the guard's normalized SQL
    verdict: str | None
    error_kind: str | None
    valid: bool
    execution_match: bool
    exact_match: bool
    retried: bool
    model_calls: int
    latency_ms: float
    generation_ms: float
    prompt_tokens: int
    completion_tokens: int
    exec_error: str | None = None
    clarified: bool = False
    candidates: int = 0  # distinct SQL texts (greedy and sampled) the model gave over all its calls
    problem: str | None = None  # what the user was told instead of an answer
    attempts: list[list[str]] = field(default_factory=list)  # per model call: greedy, then samples

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ItemResult:
        """An item of a saved report (``report``'s JSON), older ones too; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in item.items() if k in known})


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


# --- summaries and reports -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Summary:
    n: int
    execution_accuracy: float
    exact_match: float
    valid_sql_rate: float
    retry_rate: float
    clarification_rate: float
    no_answer_rate: float  # the user got no SQL: an error or a clarifying question
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    mean_prompt_tokens: float
    mean_completion_tokens: float
    mean_candidates: float = 0.0  # distinct SQL texts the model gave per question
    verdicts: dict[str, int] = field(default_factory=dict)


def summarize(results: Sequence[ItemResult]) -> Summary:
    n = len(results)

    def share(flag: Callable[[ItemResult], bool]) -> float:
        return round(sum(1 for r in results if flag(r)) / n, 4) if n else 0.0

    latencies = [r.latency_ms for r in results]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return Summary(
        n=n,
        execution_accuracy=share(lambda r: r.execution_match),
        exact_match=share(lambda r: r.exact_match),
        valid_sql_rate=share(lambda r: r.valid),
        retry_rate=share(lambda r: r.retried),
        clarification_rate=share(lambda r: r.clarified),
        no_answer_rate=share(lambda r: r.answer_sql is None),
        latency_p50_ms=None if p50 is None else round(p50, 1),
        latency_p99_ms=None if p99 is None else round(p99, 1),
        mean_prompt_tokens=round(sum(r.prompt_tokens for r in results) / n, 1) if n else 0.0,
        mean_completion_tokens=round(sum(r.completion_tokens for r in results) / n, 1) if n else 0.0,
        mean_candidates=round(sum(r.candidates for r in results) / n, 2) if n else 0.0,
        verdicts=dict(Counter(r.verdict or r.error_kind or "none" for r in results).most_common()),
    )


def by_difficulty(results: Sequence[ItemResult]) -> dict[str, Summary]:
    """``all`` first, then each difficulty the data has, easiest first."""
    levels = sorted(
        {r.difficulty for r in results if r.difficulty},
        key=lambda d: (DIFFICULTY_ORDER.index(d) if d in DIFFICULTY_ORDER else len(DIFFICULTY_ORDER), d),
    )
    return {"all": summarize(results), **{d: summarize([r for r in results if r.difficulty == d]) for d in levels}}


def compare(a: Sequence[ItemResult], b: Sequence[ItemResult]) -> McNemar:
    """McNemar's test on execution accuracy over the same questions, paired by index."""
    if [r.index for r in a] != [r.index for r in b]:
        raise ValueError("the two runs must cover the same questions")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x.execution_match and not y.execution_match)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y.execution_match and not x.execution_match)
    return mcnemar(only_a, only_b)


def report(
    *, data: Path, configs: Sequence[EvalConfig], runs: Sequence[Sequence[ItemResult]], elapsed_s: float
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "data": str(data),
        "questions": len(runs[0]) if runs else 0,
        "elapsed_s": round(elapsed_s, 1),
        "runs": [
            {
                "config": asdict(config),
                "summary": {k: asdict(v) for k, v in by_difficulty(results).items()},
                "items": [asdict(r) for r in results],
            }
            for config, results in zip(configs, runs, strict=True)
        ],
    }
    if len(runs) == 2:
        out["comparison"] = {
            "a": configs[0].name,
            "b": configs[1].name,
            "execution_accuracy_difference": round(
                summarize(runs[1]).execution_accuracy - summarize(runs[0]).execution_accuracy, 4
            ),
            "mcnemar": compare(runs[0], runs[1]).to_json(),
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Evaluation of `{result['data']}`: {result['questions']} questions, {result['elapsed_s']} s.", ""]
    for run in result["runs"]:
        config = run["config"]
        lines += [
            f"**{config['name']}**: adapter `{config['adapter'] or 'base'}`, prompt `{config['prompt_format']}`, "
            f"schema budget {config['schema_budget']} tokens, retry {'on' if config['retry'] else 'off'}, "
            f"examples {_on(config.get('examples'))}, clarify {_on(config.get('clarify'))}, "
            f"candidates {config.get('candidates', 0)} (temperature {config.get('temperature', 0.7)}), "
            f"values {_on(config.get('values', True))}, glossary {_on(config.get('glossary', True))}",
            "",
            "| difficulty | n | exec. acc. | exact match | valid SQL | retry rate | clarified | no answer | p50 s "
            "| p99 s | tokens in/out |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for level, s in run["summary"].items():
            lines.append(
                f"| {level} | {s['n']} | {_pct(s['execution_accuracy'])} | {_pct(s['exact_match'])} "
                f"| {_pct(s['valid_sql_rate'])} | {_pct(s['retry_rate'])} | {_pct(s.get('clarification_rate', 0.0))} "
                f"| {_pct(s.get('no_answer_rate'))} | {_secs(s['latency_p50_ms'])} "
                f"| {_secs(s['latency_p99_ms'])} | {s['mean_prompt_tokens']:.0f}/{s['mean_completion_tokens']:.0f} |"
            )
        verdicts = ", ".join(f"{k} {v}" for k, v in run["summary"]["all"]["verdicts"].items())
        lines += ["", f"Final verdicts: {verdicts}.", ""]
    if "schema_recall" in result:
        lines += ["Gold tables kept by the budgeted schema:", ""]
        lines += ["| budget (tokens) | table recall | questions with all tables |", "|---:|---:|---:|"]
        for budget, r in result["schema_recall"].items():
            lines.append(f"| {budget} | {_pct(r['table_recall'] or 0)} | {_pct(r['questions_complete'] or 0)} |")
        lines.append("")
    if "comparison" in result:
        c, m = result["comparison"], result["comparison"]["mcnemar"]
        lines.append(
            f"**{c['b']} vs {c['a']}**: execution accuracy {c['execution_accuracy_difference'] * 100:+.1f} points; "
            f"McNemar ({m['method']}): only {c['a']} right {m['only_a']}, only {c['b']} right {m['only_b']}, "
            f"statistic {m['statistic']:.3f}, p = {m['p_value']:.4f}."
        )
    return "\n".join(lines).rstrip() + "\n"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def _on(flag: object) -> str:
    return "on" if flag else "off"


def _secs(ms: float | None) -> str:
    return "–" if ms is None else f"{ms / 1000:.2f}"


def write_reports(result: dict[str, Any], out: Path) -> Path:
    """JSON to ``out``, Markdown to ``out`` with the suffix ``.md``; returns the Markdown path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    md = out.with_suffix(".md") if out.suffix != ".md" else out.with_name(out.name + ".md")
    md.write_text(markdown(result), encoding="utf-8")
    return md


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
