"""Benchmark for schemas/values.py: index build and question linking on Spider dev.

    .venv/bin/python -m bench.values_bench [--spider ../shared/spider-dev]

Per database: text columns indexed (and skipped), values, build time, mean time to link one
question (over that database's dev questions), the share of questions that get at least one
link, and the share of links whose value the gold SQL uses as a literal (a rough precision:
a link can be right without the gold query filtering on it). A last row links every dev
question against a synthetic index at the size bound (MAX_VALUES). Figures are wall-clock on
a shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

from schemas.introspect import introspect_url
from schemas.values import MAX_DISTINCT, MAX_VALUES, IndexedColumn, ValueIndex, build_index, links

ROOT = Path(__file__).resolve().parent.parent
_LITERAL = re.compile(r"""["']([^"']*)["']""")


def _mean_link_us(index: ValueIndex, questions: list[str], repeat: int) -> float:
    per_round = []
    for _ in range(repeat):
        start = time.perf_counter()
        for q in questions:
            links(index, q)
        per_round.append((time.perf_counter() - start) / len(questions) * 1e6)
    return statistics.median(per_round)


def _synthetic(size: int) -> ValueIndex:
    rng = random.Random(7)
    syllables = ["ka", "lo", "mi", "ra", "to", "ne", "su", "vi", "da", "pe", "ro", "gu"]

    def word() -> str:
        return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))

    columns = []
    for c in range(size // MAX_DISTINCT):
        values = tuple(
            sorted({" ".join(word() for _ in range(rng.randint(1, 3))).title() for _ in range(MAX_DISTINCT)})
        )
        columns.append(IndexedColumn(table=f"t{c // 4:03d}", column=f"c{c % 4}", values=values))
    return ValueIndex(columns=tuple(columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spider", default=str(ROOT.parent / "shared" / "spider-dev"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    spider = Path(args.spider)
    examples: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ex in json.loads((spider / "dev.json").read_text(encoding="utf-8")):
        examples[ex["db_id"]].append((ex["question"], ex["query"]))

    header = f"{'database':<26}{'columns':>8}{'skipped':>8}{'values':>8}{'build ms':>10}{'link µs':>9}{'linked':>8}{'in gold':>8}"
    print(header)
    print("-" * len(header))
    all_questions: list[str] = []
    for db in sorted(examples):
        url = f"sqlite:///{spider / 'database' / db / f'{db}.sqlite'}"
        schema = introspect_url(url, samples=0)
        start = time.perf_counter()
        index = build_index(url, schema)
        build_ms = (time.perf_counter() - start) * 1000
        questions = [q for q, _ in examples[db]]
        all_questions += questions
        linked = found = in_gold = 0
        for question, gold in examples[db]:
            got = links(index, question)
            literals = {m.strip().lower() for m in _LITERAL.findall(gold)}
            linked += bool(got)
            found += len(got)
            in_gold += sum(1 for link in got if link.value.strip().lower() in literals)
        print(
            f"{db:<26}{len(index.columns):>8}{index.skipped:>8}{len(index):>8}{build_ms:>10.0f}"
            f"{_mean_link_us(index, questions, args.repeat):>9.1f}{linked / len(questions):>8.0%}"
            f"{(in_gold / found if found else 0):>8.0%}"
        )
    big = _synthetic(MAX_VALUES)
    print(
        f"{'synthetic (all questions)':<26}{len(big.columns):>8}{0:>8}{len(big):>8}{'-':>10}"
        f"{_mean_link_us(big, all_questions, args.repeat):>9.1f}{'-':>8}{'-':>8}"
    )


if __name__ == "__main__":
    main()
