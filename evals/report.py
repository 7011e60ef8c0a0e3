"""What a run measured: per-item results summed up overall and by difficulty, paired
comparisons (McNemar), and the JSON and Markdown reports."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from evals.data import EvalConfig
from evals.metrics import (
    McNemar,
    mcnemar,
    percentile,
)

DIFFICULTY_ORDER = ("easy", "medium", "hard", "extra")


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
