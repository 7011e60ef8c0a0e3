"""Slack slash commands against ``python -m bot serve``'s app: acknowledgement latency and
time to answer at several concurrencies.

    .venv/bin/python -m bench.slack_bench [--levels 1,10,50] [--rounds 3] [--local]

The server runs on 127.0.0.1 with its Slack app pointed at a fake Slack Web API (a real
HTTP server). Each level sends N correctly signed ``/sql`` commands at once and waits for
all N answers on their ``response_url``. The model is a scripted instant engine (the
server's own overhead), and with ``--local`` also the offline local model (the first
answer loads it; the warm-up round is not counted). The cache is off, so every question
goes through the model. Compare ratios within one run: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chat2sql.ratelimit import Limit
from chat2sql.settings import Settings
from tests.support.databases import make_sqlite, sample_script
from tests.support.slack import SlackHarness, running_slack

SQL = "SELECT name FROM employees ORDER BY id"
QUESTIONS = (
    "how many employees are there?",
    "list the employees in engineering",
    "what is the average salary by department?",
    "who was hired most recently?",
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _level(h: SlackHarness, n: int, round_no: int) -> tuple[list[float], list[float], int]:
    before = len(h.fake.of("respond"))
    tag = f"r{round_no}n{n}"
    sent: dict[str, float] = {}

    async def one(i: int) -> float:
        hook = f"{tag}-{i}"
        sent[hook] = time.perf_counter()
        _, ack_s = await h.command(f"{QUESTIONS[i % len(QUESTIONS)]} ({tag}-{i})", hook=hook)
        return ack_s

    acks = await asyncio.gather(*(one(i) for i in range(n)))
    with contextlib.suppress(AssertionError):
        await h.fake.wait_for(lambda f: len(f.of("respond")) >= before + n, timeout=600)
    answered = {c.path.rsplit("/", 1)[1]: c.at for c in h.fake.of("respond")[before:]}
    answers = [answered[k] - t for k, t in sent.items() if k in answered]
    return list(acks), answers, n - len(answers)


async def _run(engine: str, levels: list[int], rounds: int, model: Any, root: Path) -> list[tuple[Any, ...]]:
    slug = engine.replace(" ", "-")
    settings = Settings(data_dir=root / slug, _env_file=None)  # type: ignore[call-arg]
    db = make_sqlite(root / f"{slug}.db", sample_script("sqlite"))
    rows: list[tuple[Any, ...]] = []
    limits = {"user_limit": Limit(100_000, 100_000), "workspace_limit": Limit(100_000, 100_000)}
    async with running_slack(settings, db, model=model, cache_ttl_s=0, **limits) as h:
        await _level(h, 1, -1)  # warm-up: Bolt's token check, and the local model's load
        for n in levels:
            acks: list[float] = []
            answers: list[float] = []
            lost = 0
            for r in range(rounds):
                a, b, missing = await _level(h, n, r)
                acks += a
                answers += b
                lost += missing
            rows.append(
                (
                    engine,
                    n,
                    len(acks),
                    statistics.median(acks) * 1000,
                    _pct(acks, 0.99) * 1000,
                    statistics.median(answers) * 1000 if answers else float("nan"),
                    _pct(answers, 0.99) * 1000 if answers else float("nan"),
                    lost,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local", action="store_true", help="also run with the offline local model")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    rows: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from tests.support.clients import ScriptedClient

        rows += asyncio.run(_run("instant", levels, args.rounds, ScriptedClient([SQL]), root))
        if args.local:
            from bot.wiring import inference_client

            # The model as configured (CHAT2SQL_MODEL, CHAT2SQL_DTYPE…), converted once under ./data.
            local = inference_client(Settings(data_dir=Path("data"), inference="local"))
            rows += asyncio.run(_run("local model", levels, 1, local, root))
    header = ("engine", "concurrent", "requests", "ack p50 ms", "ack p99 ms", "answer p50 ms", "answer p99 ms", "lost")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        print(" | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
