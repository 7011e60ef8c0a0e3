"""Non-model overhead of the bot core per question.

    .venv/bin/python -m bench.core_bench [--questions N] [--gc-freeze]

A scripted instant engine stands in for the model; the database is a registered SQLite
file with 100 tables (schema snapshot in the registry). Measures the full path
(validate, rate limit, resolve, render the budgeted schema, guard, validation run, audit
row) with the cache off, and the cache-hit path, and counts the statements each question
sends to the registry database (the bot's own state: resolution, access, examples, the
audit row, the thread). Compare ratios within one run. ``--gc-freeze`` first moves the
start-up heap out of the collector's sight, as ``bot.server`` does once its platforms are up:
the full collections that land inside a question then take milliseconds, not ~100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event

from bench.table import print_table
from bot.core.access import Admins
from bot.core.assistant import AssistantConfig
from bot.state import assistant_over
from bot.store import BotStore, Where
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter, Limit
from chat2sql.settings import Settings
from schemas.registry import Registry
from tests.support.clients import ScriptedClient

TABLES = 100
WHERE = Where(platform="bench", workspace="w", channel="c", user_id="u")


def _database(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        for i in range(TABLES):
            ref = f", parent_id INTEGER REFERENCES t{i - 1:03d}(id)" if i else ""
            conn.execute(
                f"CREATE TABLE t{i:03d} (id INTEGER PRIMARY KEY, label TEXT, amount REAL, created_at TEXT{ref})"
            )
            conn.executemany(
                f"INSERT INTO t{i:03d} (id, label, amount, created_at) VALUES (?, ?, ?, ?)",
                [(j, f"label {j % 7}", j * 1.5, f"2026-01-{1 + j % 28:02d}") for j in range(50)],
            )
    return f"sqlite:///{path}"


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def _run(folder: Path, questions: int) -> list[list[str]]:
    settings = Settings(data_dir=folder / "data", _env_file=None)  # type: ignore[call-arg]
    rows = []
    for label, ttl in (("full path (cache off)", 0.0), ("cache hit", 3600.0)):
        client = ScriptedClient(["SELECT label, SUM(amount) AS total FROM t042 GROUP BY label ORDER BY total DESC"])
        bot = assistant_over(
            registry=Registry.open(settings),
            store=BotStore.open(settings),
            client=client,
            limiter=InMemoryRateLimiter(),
            cache=InMemoryCache(),
            admins=Admins.parse(""),
            config=AssistantConfig(
                user_limit=Limit(10**6, 10**6), workspace_limit=Limit(10**6, 10**6), cache_ttl_s=ttl
            ),
        )
        if "bench" not in bot.registry.names():
            bot.registry.add("bench", _database(folder / "wide.db"), registered_by="bench")
        await bot.ask("total amount per label in t042", WHERE)  # warm-up (and the cached answer)
        statements = [0]

        def count(*_: object, tally: list[int] = statements) -> None:
            tally[0] += 1

        event.listen(bot.store.engine, "before_cursor_execute", count)
        times = []
        for i in range(questions):
            question = "total amount per label in t042" if ttl else f"total amount per label in t042, take {i}"
            t0 = time.perf_counter()
            reply = await bot.ask(question, WHERE)
            times.append((time.perf_counter() - t0) * 1000)
            assert reply.kind == "answer", reply.text
            assert reply.answer is not None and reply.answer.cache_hit == bool(ttl)
        event.remove(bot.store.engine, "before_cursor_execute", count)
        per_question = statements[0] / questions
        rows.append([label, str(questions), f"{_pct(times, 50):.2f}", f"{_pct(times, 99):.2f}", f"{per_question:.1f}"])
        await bot.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument(
        "--gc-freeze", action="store_true", help="freeze the start-up heap first, as the chat server does"
    )
    args = parser.parse_args(argv)
    if args.gc_freeze:
        gc.freeze()
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(_run(Path(tmp), args.questions))
    header = ["path", "questions", "p50 ms", "p99 ms", "registry statements"]
    frozen = ", start-up heap frozen" if args.gc_freeze else ""
    print_table(f"Bot core overhead per question, instant engine, {TABLES}-table SQLite schema{frozen}", header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
