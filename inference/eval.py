"""Evaluation harness over a Spider-format set, through the production question flow.

``python -m inference.eval --data DIR [--limit N] [--out FILE] [--config SPEC]
[--compare SPEC_A SPEC_B] [--inference local|worker|openai]``

DIR holds ``dev.json`` (items with ``db_id``, ``question``, ``query`` and optionally
``difficulty`` or Spider's ``hardness``), ``tables.json`` and
``database/<db_id>/<db_id>.sqlite``. Each database is registered in a throw-away registry
and every question goes through ``bot.core.assistant.Assistant.ask``: the same prompt
format, schema rendering within the budget, guard, validation run and one retry on a guard
or database error as in chat. The harness only watches the inference client.

A configuration (``SPEC``) is a JSON or YAML file or an inline ``key=value,key=value`` list
with the keys ``name``, ``adapter``, ``prompt_format``, ``schema_budget``, ``retry``,
``examples`` and ``clarify`` (on/off); unset keys come from the settings, as in the bot.
``retry=off`` turns off the assistant's one automatic retry. ``examples=on`` gives the
assistant the set's other questions of the same database as verified examples
(leave-one-out: a question never sees its own gold SQL). ``clarify=on`` lets it ask back
when a question matches nothing in the schema; the clarification rate is reported.
``--recall BUDGET,...`` also reports, per schema token budget, the share of the gold
queries' tables that the budgeted schema keeps (no model needed).

Reported, overall and by difficulty: execution accuracy (``inference.eval_metrics``:
Spider's result comparison), the seed's normalized exact match, valid-SQL rate (the
guard accepted the final SQL and the database ran it), retry rate, latency p50/p99 (end to
end per question) and tokens. ``--compare`` adds McNemar's paired test on execution
accuracy. ``--out FILE`` writes JSON to FILE and Markdown beside it (``FILE`` with ``.md``);
without it the Markdown goes to stdout.
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bot.core.access import Admins
from bot.core.assistant import Assistant, AssistantConfig
from bot.store import BotStore, Where
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter, Limit
from chat2sql.settings import Settings
from inference.client import InferenceClient
from inference.eval_metrics import McNemar, exact_match, execution_match, mcnemar, percentile
from inference.protocol import DatabaseInfo, GenerateRequest, GenerateResponse
from schemas.registry import NAME_PATTERN, Registry

# The guard appends LIMIT preview_max_rows; far above any gold result, so it never cuts one.
EVAL_MAX_ROWS = 100_000
EXEC_TIMEOUT_S = 30.0
DIFFICULTY_ORDER = ("easy", "medium", "hard", "extra")
_UNLIMITED = Limit(1_000_000.0, 1_000_000)
_CONFIG_KEYS = frozenset({"name", "adapter", "prompt_format", "schema_budget", "retry", "examples", "clarify"})
_FLAGS = frozenset({"retry", "examples", "clarify"})
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
class EvalConfig:
    name: str = "default"
    adapter: str | None = None
    prompt_format: str = "schema"
    schema_budget: int = 1500
    retry: bool = True
    examples: bool = False
    clarify: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> EvalConfig:
        from bot.wiring import assistant_config

        config = assistant_config(settings)
        return cls(
            adapter=config.adapter, prompt_format=config.prompt_format, schema_budget=config.schema_budget_tokens
        )

    def updated(self, spec: str) -> EvalConfig:
        """This configuration with the keys of ``spec`` (a file, or ``key=value,...``) changed.

        >>> EvalConfig().updated("prompt_format=seed, retry=off").retry
        False
        """
        path = Path(spec)
        values: dict[str, Any]
        if path.suffix.lower() in (".json", ".yaml", ".yml") and path.is_file():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
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
        unknown = set(values) - _CONFIG_KEYS
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
        return int(value)
    if key == "adapter":
        return None if value in (None, "", "none", "default") else str(value)
    return str(value)


def load_dataset(folder: Path, *, limit: int | None = None) -> list[Example]:
    try:
        items = json.loads((folder / "dev.json").read_text(encoding="utf-8"))
        tables = json.loads((folder / "tables.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise EvalError(f"{folder}: cannot read dev.json and tables.json ({err})") from None
    known = {t["db_id"] for t in tables}
    examples = [
        Example(
            db_id=item["db_id"],
            question=item["question"],
            query=item["query"],
            difficulty=item.get("difficulty") or item.get("hardness"),
        )
        for item in items[:limit]
    ]
    for db_id in sorted({e.db_id for e in examples}):
        if db_id not in known:
            raise EvalError(f"{db_id} is not in {folder / 'tables.json'}")
        if not database_path(folder, db_id).is_file():
            raise EvalError(
                f"{database_path(folder, db_id)} is missing (the shipped set: python -m inference.eval_samples DIR)"
            )
    return examples


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


async def evaluate(
    examples: Sequence[Example],
    *,
    data: Path,
    client: InferenceClient,
    configs: Sequence[EvalConfig],
    progress: Progress | None = None,
) -> list[list[ItemResult]]:
    """Every example under every configuration, through one ``Assistant`` per configuration."""
    gold = {i: _execute(database_path(data, e.db_id), e.query) for i, e in enumerate(examples)}
    with tempfile.TemporaryDirectory(prefix="chat2sql-eval-") as work:
        settings = Settings(data_dir=Path(work), _env_file=None)  # type: ignore[call-arg]
        registry, store = Registry.open(settings), BotStore.open(settings)
        try:
            names = {db_id: _register(registry, data, db_id) for db_id in sorted({e.db_id for e in examples})}
            runs = []
            for config in configs:
                recorder = _Recorder(client, retry=config.retry)
                assistant = Assistant(
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
                runs.append(results)
            return runs
        finally:
            registry.close()
            store.close()


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


def _register(registry: Registry, data: Path, db_id: str) -> str:
    name = db_id.lower() if NAME_PATTERN.fullmatch(db_id.lower()) else "db_" + re.sub(r"[^a-z0-9_]", "_", db_id.lower())
    registry.add(name[:63], f"sqlite:///{database_path(data, db_id).resolve()}", registered_by="eval")
    return name[:63]


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
        valid=reply.kind == "answer",
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
    return f"[{config.name} {r.index + 1}/{total}] {mark:<14} {r.latency_ms / 1000:6.1f} s  {r.question[:60]}"


# --- summaries and reports -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Summary:
    n: int
    execution_accuracy: float
    exact_match: float
    valid_sql_rate: float
    retry_rate: float
    clarification_rate: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    mean_prompt_tokens: float
    mean_completion_tokens: float
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
        latency_p50_ms=None if p50 is None else round(p50, 1),
        latency_p99_ms=None if p99 is None else round(p99, 1),
        mean_prompt_tokens=round(sum(r.prompt_tokens for r in results) / n, 1) if n else 0.0,
        mean_completion_tokens=round(sum(r.completion_tokens for r in results) / n, 1) if n else 0.0,
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
            f"examples {'on' if config.get('examples') else 'off'}, clarify {'on' if config.get('clarify') else 'off'}",
            "",
            "| difficulty | n | exec. acc. | exact match | valid SQL | retry rate | clarified | p50 s | p99 s "
            "| tokens in/out |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for level, s in run["summary"].items():
            lines.append(
                f"| {level} | {s['n']} | {_pct(s['execution_accuracy'])} | {_pct(s['exact_match'])} "
                f"| {_pct(s['valid_sql_rate'])} | {_pct(s['retry_rate'])} | {_pct(s.get('clarification_rate', 0.0))} "
                f"| {_secs(s['latency_p50_ms'])} "
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


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


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
    if not examples:
        raise EvalError(f"{args.data / 'dev.json'} has no questions")
    budgets = [int(b) for b in args.recall.split(",")] if args.recall else []
    if args.recall_only:
        recall = {"data": str(args.data), "questions": len(examples), "elapsed_s": 0.0, "runs": [],
                  "schema_recall": schema_recall(examples, args.data, budgets or [base.schema_budget])}  # fmt: skip
        print(markdown(recall), end="")
        return 0
    client = inference_client(settings)
    try:
        started = time.perf_counter()
        await _warm_up(client, configs[0], examples[0].db_id)
        runs = await evaluate(
            examples,
            data=args.data,
            client=client,
            configs=configs,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    result = report(data=args.data, configs=configs, runs=runs, elapsed_s=elapsed)
    if budgets:
        result["schema_recall"] = schema_recall(examples, args.data, budgets)
    if args.out is not None:
        md = write_reports(result, args.out)
        print(f"wrote {args.out} and {md}", file=sys.stderr)
    else:
        print(markdown(result), end="")
    return 0


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
    parser.add_argument("--recall-only", action="store_true", help="only the table-recall table (no model)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except EvalError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
