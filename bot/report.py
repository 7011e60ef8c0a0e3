"""``python -m bot report ab [--since 7d|ISO] [--json]``: the arms of an A/B test side by side.

Per arm: questions, answers, valid-SQL rate (guard accepted, of the questions that reached
the model), previews and their error rate, 👍/👎 and corrections, latency p50/p99. The valid
rates of the two arms are compared with a two-proportion z-test (users, not questions, are
randomised, so treat small p-values with care when a few users ask most questions).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.audit import InvalidSince, parse_since
from bot.core.types import AuditEntry
from bot.store import BotStore
from chat2sql.messages import registry_unusable, user_message
from chat2sql.redact import error_line
from chat2sql.settings import Settings


def report_main(argv: Sequence[str], *, settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot report", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="report", required=True)
    ab = sub.add_parser("ab", help="compare the arms of the A/B test")
    ab.add_argument("--since", help="7d, 12h, or an ISO date/time (default: everything)")
    ab.add_argument("--json", action="store_true")
    args = parser.parse_args(list(argv))
    try:
        since = parse_since(args.since, now=dt.datetime.now(dt.UTC)) if args.since else None
    except InvalidSince as err:
        print(f"error: {user_message(err)}", file=sys.stderr)
        return 2
    try:
        store = BotStore.open(settings)
        try:
            rows = store.experiment_rows(since=since)
        finally:
            store.close()
    except SQLAlchemyError as err:
        print(f"error: {registry_unusable(error_line(err))}", file=sys.stderr)
        return 1
    summary = summarize(rows)
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not summary["arms"]:
        print("No questions were asked under an A/B test yet (set CHAT2SQL_EXPERIMENT).")
    else:
        print(markdown(summary))
    return 0


def summarize(rows: Sequence[tuple[AuditEntry, dict[str, int]]]) -> dict[str, Any]:
    arms: dict[str, dict[str, Any]] = {}
    for entry, feedback in rows:
        arm = arms.setdefault(
            str(entry.arm),
            {
                "questions": 0,
                "answers": 0,
                "generated": 0,
                "valid": 0,
                "previews": 0,
                "preview_errors": 0,
                "up": 0,
                "down": 0,
                "corrected": 0,
                "latencies_ms": [],
            },
        )
        arm["questions"] += 1
        arm["answers"] += entry.error_kind is None
        if entry.guard_verdict is not None:
            arm["generated"] += 1
            arm["valid"] += entry.guard_verdict == "accepted"
        ran = entry.preview_rows is not None or entry.preview_error is not None
        arm["previews"] += ran
        arm["preview_errors"] += entry.preview_error is not None
        for key in ("up", "down", "corrected"):
            arm[key] += feedback[key]
        if entry.latency_ms is not None:
            arm["latencies_ms"].append(entry.latency_ms)
    out: dict[str, Any] = {"arms": {}}
    for name in sorted(arms):
        a = arms.pop(name)
        latencies = sorted(a.pop("latencies_ms"))
        a["valid_rate"] = _ratio(a["valid"], a["generated"])
        a["preview_error_rate"] = _ratio(a["preview_errors"], a["previews"])
        a["latency_p50_ms"] = _percentile(latencies, 0.50)
        a["latency_p99_ms"] = _percentile(latencies, 0.99)
        out["arms"][name] = a
    names = list(out["arms"])
    if len(names) == 2:
        first, second = (out["arms"][n] for n in names)
        out["valid_rate_p_value"] = two_proportion_p(
            first["valid"], first["generated"], second["valid"], second["generated"]
        )
    return out


def markdown(summary: dict[str, Any]) -> str:
    cols = [("questions", "questions"), ("answers", "answers"), ("valid SQL", "valid_rate"), ("previews", "previews"),
            ("preview errors", "preview_error_rate"), ("👍", "up"), ("👎", "down"), ("corrected", "corrected"),
            ("p50 ms", "latency_p50_ms"), ("p99 ms", "latency_p99_ms")]  # fmt: skip
    lines = ["| arm | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, arm in summary["arms"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(arm[key], key) for _, key in cols) + " |")
    if "valid_rate_p_value" in summary:
        p = summary["valid_rate_p_value"]
        lines.append(f"\nValid-SQL rate difference: two-proportion z-test p = {'n/a' if p is None else f'{p:.3f}'}")
    return "\n".join(lines)


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value of H0: equal proportions (pooled z-test); None without data.

    >>> round(two_proportion_p(45, 50, 30, 50), 4)
    0.0005
    """
    if n1 == 0 or n2 == 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(x1 / n1 - x2 / n2) / se
    return math.erfc(z / math.sqrt(2))


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return "–"
    if key.endswith("_rate"):
        return f"{value:.1%}"
    if key.endswith("_ms"):
        return f"{value:.0f}"
    return str(value)
