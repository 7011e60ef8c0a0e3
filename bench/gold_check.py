"""False rejections of the guard on gold queries: every one is a correct query it refused.

    .venv/bin/python -m bench.gold_check --data ../shared/spider-dev

Reads a Spider-layout data set (``dev.json`` with ``db_id`` and ``query``;
``database/<db_id>/<db_id>.sqlite``), copies each database into a temporary data dir,
registers the copy there with ``python -m schemas add`` and checks its gold queries with
``python -m schemas check --json --file`` (the CLI in this process, with settings that name
only the temporary dir: the configured registry is never opened). Each accepted query's
normalized SQL then runs beside the original on a read-only connection and must return
the same rows (as a multiset, or in order where the original has ORDER BY).

Prints one table; exits 1 if any gold query is rejected or returns other rows.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from chat2sql.settings import Settings
from schemas import cli

MAX_ROWS = 1_000_000  # the guard appends a LIMIT: far above any gold result, so no row is cut
QUERY_TIMEOUT_S = 10.0


@dataclass(kw_only=True)
class DatabaseReport:
    name: str
    gold: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # rule -> count
    rows_differ: int = 0
    original_fails: int = 0  # gold queries SQLite itself cannot run: not the guard's doing
    examples: list[str] = field(default_factory=list)  # the first few rejections and mismatches


def gold_by_database(data: Path) -> dict[str, list[str]]:
    """Gold queries per database, in file order; a query is one line, as ``--file`` reads."""
    items = json.loads((data / "dev.json").read_text(encoding="utf-8"))
    out: dict[str, list[str]] = {}
    for item in items:
        out.setdefault(item["db_id"], []).append(" ".join(str(item["query"]).split()))
    return out


def check_gold(data: Path, workdir: Path) -> list[DatabaseReport]:
    """Register every database of ``data`` in a registry under ``workdir`` and check its gold."""
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        data_dir=data_dir,
        registry_url=f"sqlite:///{data_dir / 'gold-registry.db'}",
        _env_file=None,  # type: ignore[call-arg]
    )
    reports = []
    for name, queries in sorted(gold_by_database(data).items()):
        copy = workdir / "databases" / f"{name}.sqlite"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / "database" / name / f"{name}.sqlite", copy)
        _cli(["add", name, f"sqlite:///{copy}"], settings)
        reports.append(_check_database(name, queries, copy, workdir, settings))
    return reports


def _check_database(name: str, queries: list[str], db: Path, workdir: Path, settings: Settings) -> DatabaseReport:
    file = workdir / f"{name}.sql"
    file.write_text("\n".join(queries) + "\n", encoding="utf-8")
    out = _cli(["check", "--db", name, "--json", "--max-rows", str(MAX_ROWS), "--file", str(file)], settings)
    results = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(results) == len(queries), f"{name}: {len(results)} results for {len(queries)} queries"
    report = DatabaseReport(name=name, gold=len(queries))
    for sql, result in zip(queries, results, strict=True):
        if not result["ok"]:
            report.rejected[result["rule"]] += 1
            _example(report, f"rejected by {result['rule']}: {result['reason']} | {sql}")
            continue
        report.accepted += 1
        _compare(report, db, sql, result["normalized"])
    return report


def _compare(report: DatabaseReport, db: Path, original: str, normalized: str) -> None:
    try:
        expected = _rows(db, original)
    except sqlite3.Error:
        report.original_fails += 1
        return
    try:
        got = _rows(db, normalized)
    except sqlite3.Error as err:
        got = [("error", str(err))]
    same = got == expected if _ordered(original) else Counter(got) == Counter(expected)
    if not same:
        report.rows_differ += 1
        _example(report, f"rows differ: {original} -> {normalized}")


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    deadline = time.monotonic() + QUERY_TIMEOUT_S
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def _ordered(sql: str) -> bool:
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except SqlglotError:
        return False
    return isinstance(tree, exp.Query) and tree.args.get("order") is not None


def _example(report: DatabaseReport, line: str) -> None:
    if len(report.examples) < 5:
        report.examples.append(line)


def _cli(argv: list[str], settings: Settings) -> str:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(argv, settings=settings)
    if code != cli.EXIT_OK:
        raise RuntimeError(f"python -m schemas {argv[0]} failed: {stderr.getvalue().strip()}")
    return stdout.getvalue()


def render(reports: Sequence[DatabaseReport]) -> str:
    header = ("database", "gold", "accepted", "rejected", "by rule", "rows differ", "gold fails")
    rows = [
        (
            r.name,
            str(r.gold),
            str(r.accepted),
            str(sum(r.rejected.values())),
            ", ".join(f"{rule} {n}" for rule, n in sorted(r.rejected.items())) or "-",
            str(r.rows_differ),
            str(r.original_fails),
        )
        for r in reports
    ]
    total = (
        "total",
        str(sum(r.gold for r in reports)),
        str(sum(r.accepted for r in reports)),
        str(sum(sum(r.rejected.values()) for r in reports)),
        ", ".join(f"{k} {n}" for k, n in sorted(sum((r.rejected for r in reports), Counter()).items())) or "-",
        str(sum(r.rows_differ for r in reports)),
        str(sum(r.original_fails for r in reports)),
    )
    table = [header, *rows, total]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gold_check", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a Spider-layout data set")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="c2s-gold-") as tmp:
        reports = check_gold(args.data.resolve(), Path(tmp))
    print(render(reports))
    for report in reports:
        for line in report.examples:
            print(f"{report.name}: {line}")
    failed = any(r.rejected or r.rows_differ for r in reports)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
