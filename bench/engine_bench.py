"""The engines side by side on the worker's own path (prompt, budget, scheduler, cleanup).

For each engine (llama.cpp; transformers in float32; transformers in bf16), in a process of
its own so that its peak memory is its own: load time, the first question on a database
(cold prefix), the following questions on it (warm prefix, p50/p99), tokens per second,
peak RSS, throughput at 1, 4 and 8 concurrent questions (the same questions at each level),
and execution accuracy on the questions asked. Questions come from Spider dev (``--spider``, default ../shared/spider-dev)
and the shipped sample databases' evaluation set; the schema text is what the bot sends.

    python -m bench.engine_bench                         # all three engines, a table
    python -m bench.engine_bench --engines llamacpp --questions 40 --json data/bench/engine.json

``--json`` writes the figures that ``python -m deploy.cost --measured`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("llamacpp", "transformers-float32", "transformers-bfloat16")
LEVELS = (1, 4, 8)


@dataclass(frozen=True)
class Question:
    db_id: str
    question: str
    gold: str
    path: Path


def _questions(args: argparse.Namespace) -> tuple[list[Question], list[Question]]:
    """The latency set: ``--questions`` on each of the ``--databases`` Spider databases with
    the most questions, then on each of ``--samples`` shipped sample databases (built once
    into data/eval/samples). The throughput pool: the Spider databases' next questions,
    interleaved across them."""
    from evals.data import database_path, load_dataset
    from evals.samples import build

    samples = ROOT / "data" / "eval" / "samples"
    if not (samples / "dev.json").is_file():
        build(samples)
    latency: list[Question] = []
    rest: list[list[Question]] = []
    for folder, databases in ((Path(args.spider), args.databases), (samples, args.samples)):
        by_db: dict[str, list[Question]] = {}
        for e in load_dataset(folder):
            by_db.setdefault(e.db_id, []).append(Question(e.db_id, e.question, e.query, database_path(folder, e.db_id)))
        for db_id in sorted(by_db, key=lambda d: (-len(by_db[d]), d))[:databases]:
            latency.extend(by_db[db_id][: args.questions])
            if folder != samples:
                rest.append(by_db[db_id][args.questions :])
    pool = [q for group in zip(*rest, strict=False) for q in group]
    return latency, pool


def _schemas(questions: list[Question]) -> dict[str, Any]:
    from schemas.introspect import introspect_url

    paths = {q.db_id: q.path for q in questions}  # one introspection per database, not per question
    return {db_id: introspect_url(f"sqlite:///{path}") for db_id, path in paths.items()}


def _request(q: Question, schema: Any, budget: int) -> Any:
    from inference.protocol import DatabaseInfo, GenerateRequest
    from schemas.render import render_schema

    text = render_schema(schema, question=q.question, max_tokens=budget)
    return GenerateRequest(question=q.question, database=DatabaseInfo(name=q.db_id, dialect="sqlite", schema_text=text))


def _matches(q: Question, sql: str | None) -> bool:
    from evals.harness import _execute
    from evals.metrics import execution_match

    if not sql:
        return False
    predicted, gold = _execute(q.path, sql), _execute(q.path, q.gold)
    if isinstance(predicted, str) or isinstance(gold, str):
        return False
    return execution_match(predicted, gold, order_matters="order by" in q.gold.lower())


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _measure(engine_name: str, args: argparse.Namespace) -> dict[str, Any]:
    from chat2sql.settings import Settings
    from inference.service import Worker
    from inference.wiring import engine_loader, worker_options

    kind, _, dtype = engine_name.partition("-")
    settings = Settings(
        data_dir=Path(args.data_dir),
        engine="llamacpp" if kind == "llamacpp" else "transformers",
        dtype=dtype or "auto",  # type: ignore[arg-type]  # one of ENGINES' suffixes
        device="cpu",
        threads=args.threads,
    )
    questions, pool = _questions(args)
    schemas = _schemas(questions)
    requests = [_request(q, schemas[q.db_id], args.budget) for q in questions]

    started = time.perf_counter()
    engine = await asyncio.to_thread(engine_loader(settings))
    load_s = time.perf_counter() - started
    worker = Worker(load_engine=lambda: engine, options=worker_options(settings))
    worker.start()
    await worker.wait_ready(60)

    cold: list[float] = []
    cold_tokens: list[int] = []
    warm: list[float] = []
    tokens = 0
    generation_s = 0.0
    correct = 0
    seen: set[str] = set()
    for q, request in zip(questions, requests, strict=True):
        t = time.perf_counter()
        response = await worker.generate(request)
        elapsed = time.perf_counter() - t
        (warm if q.db_id in seen else cold).append(elapsed)
        if q.db_id not in seen:
            cold_tokens.append(response.prompt_tokens)
        seen.add(q.db_id)
        tokens += response.completion_tokens
        generation_s += elapsed
        correct += _matches(q, response.sql)

    throughput: dict[str, float] = {}
    # Every level asks the same questions, not asked above, in waves of ``level`` at once. (A
    # prefix slot keeps only the last prompt asked on its database, so asking a question again
    # at the next level reuses its schema prefix, as any new question would, and at most one
    # question per database finds more of its prompt cached.)
    batch = [_request(q, schemas[q.db_id], args.budget) for q in pool[: args.per_level]]
    for level in args.levels:
        t = time.perf_counter()
        for i in range(0, len(batch), level):
            await asyncio.gather(*(worker.generate(r) for r in batch[i : i + level]))
        throughput[str(level)] = round(len(batch) / (time.perf_counter() - t), 3)
    await worker.stop()
    close = getattr(engine, "close", None)
    if close is not None:
        close()
    return {
        "engine": kind,
        "dtype": "q4_k_m" if kind == "llamacpp" else dtype,
        "threads": args.threads or os.cpu_count(),
        "load_s": round(load_s, 2),
        "cold_first_s": round(statistics.median(cold), 2),
        "cold_each_s": [round(c, 2) for c in cold],
        "cold_prompt_tokens": cold_tokens,
        "warm_p50_s": round(statistics.median(warm), 2) if warm else None,
        "warm_p99_s": round(_pct(warm, 99), 2) if warm else None,
        "tokens_per_s": round(tokens / generation_s, 1) if generation_s else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "throughput_qps": throughput,
        "questions": len(questions),
        "databases": len(seen),
        "execution_accuracy": round(correct / len(questions), 3),
    }


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory, 1)}


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "engine",
        "load s",
        "cold s",
        "warm p50",
        "warm p99",
        "tok/s",
        "RSS MB",
        *(f"q/s @{level}" for level in LEVELS),
        "EX",
        "n",
    )
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        name = r["engine"] if r["engine"] == "llamacpp" else f"transformers {r['dtype']}"
        cells = [
            name,
            r["load_s"],
            r["cold_first_s"],
            r["warm_p50_s"],
            r["warm_p99_s"],
            r["tokens_per_s"],
            r["peak_rss_mb"],
            *(r["throughput_qps"].get(str(level), "") for level in LEVELS),
            f"{r['execution_accuracy']:.1%}",
            r["questions"],
        ]
        lines.append(" | ".join(str(c) for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--spider", default=str(ROOT.parent / "shared" / "spider-dev"))
    parser.add_argument("--questions", type=int, default=12, help="questions per database")
    parser.add_argument("--databases", type=int, default=2, help="Spider databases")
    parser.add_argument("--samples", type=int, default=1, help="shipped sample databases")
    parser.add_argument("--per-level", type=int, default=8, help="questions asked at each concurrency level")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--budget", type=int, default=1500, help="schema tokens, as the bot's default")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", default=str(ROOT / "data"), help="the model cache's data dir")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (deploy.cost --measured)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child process's engine
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",")]
    if args.one:
        print(json.dumps(asyncio.run(_measure(args.one, args))))
        return 0
    rows = []
    for name in args.engines.split(","):
        if name not in ENGINES:
            parser.error(f"unknown engine {name!r}")
        child = [sys.executable, "-m", "bench.engine_bench", "--one", name, *(argv or sys.argv[1:])]
        print(f"measuring {name} …", file=sys.stderr, flush=True)
        done = subprocess.run(child, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {"machine": _machine(), "model": "pypi:qwen2.5-coder-0.5b", "engines": rows}
    print(_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
