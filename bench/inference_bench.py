"""Benchmarks for the worker on this CPU with the offline Qwen2.5-Coder-0.5B.

    .venv/bin/python -m bench.inference_bench [--requests N]

Model load time from the cached folder; one request at a time (latency p50/p99,
tokens/s); 8 concurrent requests with batching (batch up to 8) and without (batch 1).
Figures are wall-clock on a shared machine: the batching ratio within one run is the
figure that matters.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from chat2sql.settings import Settings
from inference.engine import Engine, EngineConfig
from inference.protocol import DatabaseInfo, GenerateRequest, GenerateResponse
from inference.service import Worker, WorkerOptions
from tests.support.models import embedded_model_dir

SCHEMA = """CREATE TABLE departments (
  id INTEGER,
  name TEXT NOT NULL, -- e.g. 'Engineering', 'Sales', 'Support'
  budget NUMERIC,
  PRIMARY KEY (id)
);

CREATE TABLE employees (
  id INTEGER,
  name TEXT NOT NULL,
  department_id INTEGER,
  salary NUMERIC NOT NULL,
  hired_on DATE NOT NULL,
  PRIMARY KEY (id),
  FOREIGN KEY (department_id) REFERENCES departments(id)
);"""

QUESTIONS = [
    "How many employees are there?",
    "What is the average salary per department?",
    "Which employee has the highest salary?",
    "List the employees hired after 2023.",
    "What is the total budget of all departments?",
    "How many employees work in Engineering?",
    "Which departments have more than two employees?",
    "Show the names of employees with a salary above 100000.",
]


def _request(i: int) -> GenerateRequest:
    return GenerateRequest(
        question=QUESTIONS[i % len(QUESTIONS)],
        database=DatabaseInfo(name="hr", dialect="sqlite", schema_text=SCHEMA),
        max_new_tokens=64,
    )


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def _worker(engine: Engine, batch: int) -> Worker:
    worker = Worker(load_engine=lambda: engine, options=WorkerOptions(batch_max_size=batch, batch_max_wait_s=0.02))
    worker.start()
    await worker.wait_ready(60)
    return worker


async def _bench(engine: Engine, requests: int) -> None:
    rows = []
    single = await _worker(engine, 1)
    await single.generate(_request(0))  # warm-up
    latencies, tokens, elapsed = [], 0, 0.0
    for i in range(requests):
        t0 = time.perf_counter()
        response = await single.generate(_request(i))
        latencies.append((time.perf_counter() - t0) * 1000)
        tokens += response.completion_tokens
        elapsed += time.perf_counter() - t0
    rows.append(
        [
            "1 at a time",
            f"{requests}",
            f"{_pct(latencies, 50):.0f}",
            f"{_pct(latencies, 99):.0f}",
            f"{tokens / elapsed:.1f}",
            f"{requests / elapsed:.2f}",
        ]
    )
    await single.stop()

    results: dict[str, float] = {}
    for label, batch in (("8 concurrent, no batching", 1), ("8 concurrent, batching", 8)):
        worker = await _worker(engine, batch)
        t0 = time.perf_counter()
        responses: list[GenerateResponse] = await asyncio.gather(*(worker.generate(_request(i)) for i in range(8)))
        wall = time.perf_counter() - t0
        lat = [r.latency_ms for r in responses]
        toks = sum(r.completion_tokens for r in responses)
        results[label] = 8 / wall
        rows.append(
            [
                label,
                "8",
                f"{_pct(lat, 50):.0f}",
                f"{_pct(lat, 99):.0f}",
                f"{toks / wall:.1f}",
                f"{8 / wall:.2f}",
            ]
        )
        await worker.stop()
    header = ["mode", "requests", "p50 ms", "p99 ms", "tokens/s", "requests/s"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("\nWorker on CPU, Qwen2.5-Coder-0.5B (bf16), schema prompt, up to 64 new tokens")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    ratio = results["8 concurrent, batching"] / results["8 concurrent, no batching"]
    print(f"\nbatching throughput ratio (8 concurrent): {ratio:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args(argv)
    Settings()  # fail early on bad settings
    path = embedded_model_dir()
    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        engine = Engine.load(EngineConfig(model_path=path, device="cpu", dtype="bfloat16"))
        loads.append(time.perf_counter() - t0)
    print(f"model load from the cached folder: median {statistics.median(loads):.2f} s (3 loads)")
    asyncio.run(_bench(engine, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
