"""Pair two saved evaluation reports: execution accuracy of each, McNemar's test, and the same
by difficulty.

``python -m inference.eval_compare A.json B.json [--run-a N] [--run-b N]``

A and B are reports written by ``python -m inference.eval --out``, run separately on the same
questions (the same data set and ``--limit``). Items are paired by their index; the two runs
must cover the same indexes with the same questions. ``--run-a``/``--run-b`` pick a run of a
report holding several (``--compare``), the first by default. Markdown goes to stdout; a
report that cannot be paired is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.text import one_line
from evals.data import EvalError, read_json
from evals.report import DIFFICULTY_ORDER, ItemResult, compare, summarize


@dataclass(frozen=True, kw_only=True)
class Run:
    label: str
    items: list[ItemResult]


def load_run(path: Path, *, run: int = 0) -> Run:
    """Run number ``run`` of the report at ``path``, labelled with its configuration's name."""
    result = read_json(path)
    runs = result.get("runs") if isinstance(result, dict) else None
    if not isinstance(runs, list) or not runs:
        raise EvalError(f"{path}: not an evaluation report (no runs)")
    if not 0 <= run < len(runs):
        raise EvalError(f"{path} has {len(runs)} run(s): no run {run}")
    chosen = runs[run]
    config = chosen.get("config") if isinstance(chosen, dict) else None
    items = chosen.get("items") if isinstance(chosen, dict) else None
    if not isinstance(items, list) or not items:
        raise EvalError(f"{path} run {run}: no items")
    try:
        parsed = [ItemResult.from_json(item) for item in items]
    except (TypeError, AttributeError):
        raise EvalError(f"{path} run {run}: its items are not evaluation results") from None
    name = config.get("name") if isinstance(config, dict) else None
    return Run(label=str(name or path.stem), items=parsed)


def pair(a: Run, b: Run) -> tuple[list[ItemResult], list[ItemResult]]:
    """The two runs' items in index order, checked to be the same questions."""
    by_a, by_b = {r.index: r for r in a.items}, {r.index: r for r in b.items}
    if len(by_a) != len(a.items) or len(by_b) != len(b.items):
        raise EvalError("a report lists the same question index twice")
    if set(by_a) != set(by_b):
        only_a, only_b = len(set(by_a) - set(by_b)), len(set(by_b) - set(by_a))
        raise EvalError(
            f"the reports cover different questions ({only_a} only in {a.label}, {only_b} only in {b.label}): "
            "run both on the same data and --limit"
        )
    for index in sorted(by_a):
        x, y = by_a[index], by_b[index]
        if (x.db_id, x.question) != (y.db_id, y.question):
            raise EvalError(f"question {index} differs between the reports: were they run on the same data?")
    order = sorted(by_a)
    return [by_a[i] for i in order], [by_b[i] for i in order]


def paired_comparison(a: Run, b: Run) -> dict[str, Any]:
    """Execution accuracy of both, McNemar's test and the discordant counts, overall and per
    difficulty (the difficulty recorded in A, else in B)."""
    items_a, items_b = pair(a, b)
    levels: dict[str, tuple[list[ItemResult], list[ItemResult]]] = {"all": (items_a, items_b)}
    for x, y in zip(items_a, items_b, strict=True):
        level = x.difficulty or y.difficulty
        if level:
            group = levels.setdefault(level, ([], []))
            group[0].append(x)
            group[1].append(y)
    ordered = sorted(
        (level for level in levels if level != "all"),
        key=lambda d: (DIFFICULTY_ORDER.index(d) if d in DIFFICULTY_ORDER else len(DIFFICULTY_ORDER), d),
    )
    rows = {}
    for level in ("all", *ordered):
        xs, ys = levels[level]
        ex_a, ex_b = summarize(xs).execution_accuracy, summarize(ys).execution_accuracy
        rows[level] = {
            "n": len(xs),
            "execution_accuracy_a": ex_a,
            "execution_accuracy_b": ex_b,
            "difference": round(ex_b - ex_a, 4),
            "mcnemar": compare(xs, ys).to_json(),
        }
    return {"a": a.label, "b": b.label, "by_difficulty": rows}


def markdown(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    overall = result["by_difficulty"]["all"]
    m = overall["mcnemar"]
    lines = [
        f"**{b} vs {a}** on {overall['n']} paired questions: execution accuracy {a} "
        f"{_pct(overall['execution_accuracy_a'])}, {b} {_pct(overall['execution_accuracy_b'])} "
        f"({overall['difference'] * 100:+.1f} points); McNemar ({m['method']}): only {a} right {m['only_a']}, "
        f"only {b} right {m['only_b']}, statistic {m['statistic']:.3f}, p = {m['p_value']:.4f}.",
        "",
        f"| difficulty | n | EX {a} | EX {b} | difference | only {a} | only {b} | p |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level, row in result["by_difficulty"].items():
        t = row["mcnemar"]
        lines.append(
            f"| {level} | {row['n']} | {_pct(row['execution_accuracy_a'])} | {_pct(row['execution_accuracy_b'])} "
            f"| {row['difference'] * 100:+.1f} | {t['only_a']} | {t['only_b']} | {t['p_value']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.eval_compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="the first report (JSON of python -m inference.eval --out)")
    parser.add_argument("b", type=Path, help="the second report")
    parser.add_argument("--run-a", type=int, default=0, help="which run of A (default: the first)")
    parser.add_argument("--run-b", type=int, default=0, help="which run of B (default: the first)")
    args = parser.parse_args(argv)
    try:
        a, b = load_run(args.a, run=args.run_a), load_run(args.b, run=args.run_b)
        if a.label == b.label:
            a = Run(label=f"{args.a.stem}:{a.label}", items=a.items)
            b = Run(label=f"{args.b.stem}:{b.label}", items=b.items)
        if a.label == b.label:
            a, b = Run(label=f"A:{a.label}", items=a.items), Run(label=f"B:{b.label}", items=b.items)
        print(markdown(paired_comparison(a, b)), end="")
    except EvalError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
