"""What the safety layers of issue 13 cost: guard throughput and preview overhead, before and after.

    .venv/bin/python -m bench.safety_bench [--baseline REF] [--repeat N]

``--baseline`` (default ``1724086``, the last commit before the allowlist) is checked out into
a temporary git worktree; the same measurement then runs once with that tree's ``schemas``
and once with this one's, each in a fresh process, on the same databases and the same
corpora. Prints one table; compare the ratios, not absolute figures (the machine is shared).

- guard: every statement of ``tests/fixtures/guard/{valid,reject}_<dialect>.sql`` through
  ``guard.check`` against the sample schema, statements per second;
- preview: one small guarded query through ``ReadOnlyRunner.run``, median milliseconds
  (SQLite now starts a child process per preview; the servers run it on a watched thread).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY = "SELECT e.name, d.name FROM employees e JOIN departments d ON d.id = e.department_id ORDER BY e.id"


def measure(urls: dict[str, str], repeat: int) -> dict[str, dict[str, float]]:
    """Runs inside the tree under test (``PYTHONPATH``): its guard, its runner."""
    from schemas import guard
    from schemas.introspect import introspect_url
    from schemas.preview import ReadOnlyRunner
    from tests.support.corpus import reject_corpus, valid_corpus

    out: dict[str, dict[str, float]] = {}
    for dialect, url in urls.items():
        schema = introspect_url(url)
        statements = valid_corpus(dialect) + [sql for _rule, sql in reject_corpus(dialect)]
        started = time.perf_counter()
        for _ in range(repeat):
            for sql in statements:
                guard.check(sql, schema)
        guard_per_s = repeat * len(statements) / (time.perf_counter() - started)
        normalized = guard.check(QUERY, schema).raise_for_rejection()
        runner = ReadOnlyRunner(url=url)
        times = []
        try:
            runner.run(normalized, max_rows=50, timeout_s=5)  # warm
            for _ in range(repeat * 10):
                t0 = time.perf_counter()
                runner.run(normalized, max_rows=50, timeout_s=5)
                times.append((time.perf_counter() - t0) * 1000)
        finally:
            runner.close()
        out[dialect] = {
            "statements": len(statements),
            "guard_per_s": guard_per_s,
            "preview_ms": statistics.median(times),
        }
    return out


def _run_in(tree: Path, urls: dict[str, str], repeat: int) -> dict[str, dict[str, float]]:
    """``measure`` in a fresh process that imports ``schemas`` and ``tests`` from ``tree``."""
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(urls), "--repeat", str(repeat)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="1724086")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # JSON urls: the child's side
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure), args.repeat)))
        return 0

    sys.path.insert(0, str(ROOT))
    from tests.support.databases import (
        make_sqlite,
        my_create_database,
        my_drop_database,
        my_reader_url,
        pg_create_database,
        pg_drop_database,
        pg_reader_url,
        sample_script,
    )

    name = f"c2s_bench_{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True, capture_output=True
        )
        pg_create_database(name, sample_script("postgres"))
        my_create_database(name, sample_script("mysql"))
        urls = {
            "sqlite": make_sqlite(Path(tmp) / "sample.db", sample_script("sqlite")),
            "postgres": pg_reader_url(name),
            "mysql": my_reader_url(name),
        }
        try:
            before = _run_in(base, urls, args.repeat)
            after = _run_in(ROOT, urls, args.repeat)
        finally:
            pg_drop_database(name)
            my_drop_database(name)
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    print(f"\nGuard and preview, baseline {args.baseline} vs this tree (repeat {args.repeat})\n")
    header = [
        "engine",
        "stmts",
        "guard/s before",
        "guard/s after",
        "ratio",
        "preview ms before",
        "preview ms after",
        "+ms",
    ]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for dialect in urls:
        b, a = before[dialect], after[dialect]
        print(
            " | ".join(
                [
                    dialect,
                    str(int(a["statements"])),
                    f"{b['guard_per_s']:.0f}",
                    f"{a['guard_per_s']:.0f}",
                    f"{a['guard_per_s'] / b['guard_per_s']:.2f}",
                    f"{b['preview_ms']:.1f}",
                    f"{a['preview_ms']:.1f}",
                    f"{a['preview_ms'] - b['preview_ms']:+.1f}",
                ]
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
