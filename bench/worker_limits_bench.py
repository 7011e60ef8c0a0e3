"""Prompt building on big schemas, before and after the linear cut, with the real tokenizer.

    .venv/bin/python -m bench.worker_limits_bench [--budget-s 20] [--max-tokens 2048]

The worker cuts ``schema_text`` to ``max_input_tokens``. The old loop recounted the whole
prompt once per dropped block (quadratic: ``"t\\n\\n" * 66000`` made 64,000 tokenizer calls);
``build_prompt`` now counts each block once up to the budget and checks a few whole prompts
near the cut. Two shapes: many one-token blocks (the attack) and ordinary CREATE TABLE
blocks. A "before" run that passes ``--budget-s`` is stopped and extrapolated from the
characters it had tokenized (the remaining calls are each a little shorter); "after" is
the median of 5 runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from inference.engine import Engine
from inference.prompts import PromptTooLong, build_prompt, schema_blocks
from tests.support.models import embedded_model_dir

QUESTION = "How many employees are there per department?"
SIZES = (10_000, 50_000, 198_000)
_TABLE = "CREATE TABLE t{i} (\n  id INTEGER,\n  name TEXT NOT NULL, -- e.g. 'a', 'b'\n  amount NUMERIC,\n  PRIMARY KEY (id)\n);"


class _Stopped(Exception):
    pass


def build_prompt_before(
    schema_text: str, *, max_tokens: int, count_tokens: Callable[[str], int], question: str = QUESTION
) -> str:
    """The old algorithm, kept for comparison: drop the last block, recount the whole prompt."""
    head, tail = build_prompt("schema", question=question, database_name="hr", schema_text="\0").split("\0")
    blocks = schema_blocks(schema_text)
    while True:
        prompt = head + "\n\n".join(blocks) + tail
        if count_tokens(prompt) <= max_tokens or not blocks:
            if count_tokens(prompt) > max_tokens:
                raise PromptTooLong()
            return prompt
        blocks.pop()


def build_prompt_after(
    schema_text: str, *, max_tokens: int, count_tokens: Callable[[str], int], question: str = QUESTION
) -> str:
    return build_prompt(
        "schema",
        question=question,
        database_name="hr",
        schema_text=schema_text,
        max_tokens=max_tokens,
        count_tokens=count_tokens,
    )


def schema_of(shape: str, chars: int) -> str:
    if shape == "tiny blocks":
        return "t\n\n" * (chars // 3)
    tables, size, i = [], 0, 0
    while size < chars:
        tables.append(_TABLE.format(i=i))
        size += len(tables[-1]) + 2
        i += 1
    return "\n\n".join(tables)[:chars]


class _Counter:
    def __init__(self, count: Callable[[str], int], deadline: float) -> None:
        self._count, self._deadline = count, deadline
        self.calls = self.chars = 0

    def __call__(self, text: str) -> int:
        if time.perf_counter() > self._deadline:
            raise _Stopped()
        self.calls += 1
        self.chars += len(text)
        return self._count(text)


def _before_total_chars(schema_text: str) -> int:
    """Characters the old loop tokenizes in all: one whole prompt per dropped block (about)."""
    blocks = schema_blocks(schema_text)
    fixed = len(build_prompt("schema", question=QUESTION, database_name="hr"))
    total, size = 0, sum(len(b) + 2 for b in blocks)
    for block in reversed(blocks):
        total += fixed + size
        size -= len(block) + 2
    return total


def _run(
    fn: Callable[..., str], schema: str, count: Callable[[str], int], max_tokens: int, budget_s: float
) -> tuple[float, int, bool, int]:
    counter = _Counter(count, time.perf_counter() + budget_s)
    started = time.perf_counter()
    try:
        fn(schema, max_tokens=max_tokens, count_tokens=counter)
    except _Stopped:
        return time.perf_counter() - started, counter.calls, False, counter.chars
    return time.perf_counter() - started, counter.calls, True, counter.chars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=20.0, help="stop a 'before' run after this long")
    parser.add_argument("--max-tokens", type=int, default=2048, help="the worker's max_input_tokens")
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    engine = Engine(model=None, tokenizer=AutoTokenizer.from_pretrained(embedded_model_dir()), device="cpu", name="b")
    rows = []
    for shape in ("tiny blocks", "tables"):
        for chars in SIZES:
            schema = schema_of(shape, chars)
            runs = [_run(build_prompt_after, schema, engine.count_tokens, args.max_tokens, 600) for _ in range(5)]
            after_s, after_calls = statistics.median(r[0] for r in runs), runs[0][1]
            before_s, before_calls, done, tokenized = _run(
                build_prompt_before, schema, engine.count_tokens, args.max_tokens, args.budget_s
            )
            if done:
                before = f"{before_s * 1000:,.0f}"
            else:
                before = (
                    f"~{before_s * _before_total_chars(schema) / tokenized * 1000:,.0f} (stopped at {before_s:.0f} s)"
                )
            rows.append(
                [
                    shape,
                    f"{len(schema):,}",
                    f"{len(schema_blocks(schema)):,}",
                    before,
                    f"{before_calls:,}" + ("" if done else "+"),
                    f"{after_s * 1000:,.1f}",
                    f"{after_calls:,}",
                ]
            )
    header = ["schema", "chars", "blocks", "before ms", "before calls", "after ms", "after calls"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\nPrompt building, schema format, max_input_tokens={args.max_tokens}, Qwen2.5 tokenizer on this CPU")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
