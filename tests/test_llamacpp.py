"""The llama.cpp engine on the real offline model: answers, stop tokens, the prefix cache
(reused on one database, not across databases), continuous batching, the same tokens and
prompt bytes as the transformers engine, and how ``auto`` picks an engine and a dtype."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chat2sql.settings import Settings
from inference import engine as engine_module
from inference.engine import EngineError, auto_dtype
from inference.llamacpp import LlamaCppConfig, LlamaCppEngine
from inference.prompts import PromptTooLong, build_prompt, prompt_for
from inference.protocol import GenerateRequest
from inference.service import Worker, WorkerOptions
from inference.sources import parse_source
from inference.wiring import choose_engine, engine_loader
from schemas.introspect import introspect_url
from schemas.render import render_schema
from tests.support.models import build_gguf_lora, embedded_gguf


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine.load(LlamaCppConfig(model_path=embedded_gguf(), threads=2, parallel=4, cache_tokens=8192))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hr_schema_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp("hr") / "hr.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT NOT NULL, budget INTEGER);
            CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL, salary INTEGER,
                department_id INTEGER REFERENCES departments(id), hired TEXT);
            INSERT INTO departments VALUES (1, 'Engineering', 500000), (2, 'Sales', 250000), (3, 'Legal', NULL);
            INSERT INTO employees VALUES (1, 'Ada', 190000, 1, '2020-01-01'), (2, 'Bo', 90000, 2, '2023-05-01'),
                (3, 'Cy', 120000, 1, '2024-02-01');
            """
        )
    schema = introspect_url(f"sqlite:///{path}")
    return render_schema(schema, question="", max_tokens=1500), path


def _same(a: str, b: str) -> bool:
    """The same answer. llama.cpp's unified cache places a question's cells wherever they are
    free, which changes the order of the float sums in attention; a near-tie token (a keyword's
    case: ``COUNT`` or ``count``) can then flip. Nothing else may differ."""
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def _prompt(schema_text: str, question: str, database: str = "hr") -> str:
    return build_prompt("schema", question=question, database_name=database, schema_text=schema_text)


def test_answers_real_questions_with_sql_that_runs(llama: LlamaCppEngine, hr_schema_text: tuple[str, Path]) -> None:
    schema_text, path = hr_schema_text
    questions = {
        "How many employees are there?": [(3,)],
        "What is the name of the employee with the highest salary?": [("Ada",)],
        "What is the total budget of all departments?": [(750000,)],
    }
    completions = llama.generate([_prompt(schema_text, q) for q in questions], adapters=[None] * 3, max_new_tokens=96)
    from inference.cleanup import extract_sql

    with sqlite3.connect(path) as conn:
        rows = [conn.execute(extract_sql(c.text)).fetchall() for c in completions]
    assert rows == list(questions.values())


def test_stops_on_either_stop_token_and_counts_its_own_tokens(
    llama: LlamaCppEngine, hr_schema_text: tuple[str, Path]
) -> None:
    prompt = _prompt(hr_schema_text[0], "How many departments are there?")
    (completion,) = llama.generate([prompt], adapters=[None], max_new_tokens=128)
    assert "<|im_end|>" not in completion.text and "<|endoftext|>" not in completion.text
    assert 0 < completion.completion_tokens < 128  # it stopped, not the limit
    assert completion.prompt_tokens == llama.count_tokens(prompt)
    (short,) = llama.generate([prompt], adapters=[None], max_new_tokens=2)
    assert short.completion_tokens == 2


def test_the_schema_prefix_is_reused_on_one_database_and_not_across(
    llama: LlamaCppEngine, hr_schema_text: tuple[str, Path]
) -> None:
    schema_text = hr_schema_text[0]
    other_schema = "CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);"
    first = _prompt(schema_text, "How many employees are there?")
    second = _prompt(schema_text, "List every department's name.")
    other = _prompt(other_schema, "How many singers are there?", database="concert")
    shared = len(llama.tokenize(first[: first.index("Question:")]))

    llama.generate([first], adapters=[None], max_new_tokens=24)
    (b,) = llama.generate([second], adapters=[None], max_new_tokens=24)
    (c,) = llama.generate([other], adapters=[None], max_new_tokens=24)
    assert b.cached_tokens >= shared  # the second question read only its own tokens
    head = len(llama.tokenize(first[: first.index("Database:")]))  # the instructions before the name
    assert c.cached_tokens <= head + 2  # another database: at most the shared instructions
    # Cached or not, greedy decoding gives the same answer.
    first = LlamaCppEngine(LlamaCppConfig(model_path=embedded_gguf(), threads=2, parallel=1, cache_tokens=4096))
    try:
        (b_alone,) = first.generate([second], adapters=[None], max_new_tokens=24)
    finally:
        first.close()
    assert b_alone.cached_tokens == 0 and _same(b_alone.text, b.text)


def test_a_short_question_does_not_wait_for_a_long_generation(
    llama: LlamaCppEngine, hr_schema_text: tuple[str, Path]
) -> None:
    # A counting prompt (no chat template) runs to its token limit: a long generation for sure.
    long = llama.submit("Count to 500: 1, 2, 3, 4, 5, 6, 7, 8,", adapter=None, max_new_tokens=200)
    deadline = time.monotonic() + 60
    while not any(r.generated for r in llama._running) and time.monotonic() < deadline:
        time.sleep(0.02)  # until the long one is decoding
    short = llama.submit(_prompt(hr_schema_text[0], "How many employees are there?"), adapter=None, max_new_tokens=4)
    short_result = short.result(timeout=120)
    assert not long.done()  # answered while the long one still runs …
    assert short_result.batch_size == 2  # … because it joined the running batch
    assert long.result(timeout=120).completion.completion_tokens == 200


def test_concurrent_questions_decode_together_and_match_alone(
    llama: LlamaCppEngine, hr_schema_text: tuple[str, Path]
) -> None:
    schema_text = hr_schema_text[0]
    prompts = [_prompt(schema_text, q) for q in ("How many employees?", "Total budget?", "Names of departments?")]
    alone = [llama.generate([p], adapters=[None], max_new_tokens=40)[0].text for p in prompts]
    futures = [llama.submit(p, adapter=None, max_new_tokens=40) for p in prompts]
    together = [f.result(timeout=120) for f in futures]
    assert max(r.batch_size for r in together) >= 2
    assert all(_same(r.completion.text, a) for r, a in zip(together, alone, strict=True))


def test_bad_requests_get_clear_errors(llama: LlamaCppEngine, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not loaded"):
        llama.submit("x", adapter="nope", max_new_tokens=4)
    with pytest.raises(EngineError, match="do not fit"):
        llama.submit("word " * 9000, adapter=None, max_new_tokens=4)
    (tmp_path / "adapter").mkdir()
    with pytest.raises(EngineError, match=r"\.gguf"):
        llama.load_adapter("seed", tmp_path / "adapter")


def test_the_same_tokens_and_prompt_bytes_as_the_transformers_engine(
    llama: LlamaCppEngine, embedded_model: Path, hr_schema_text: tuple[str, Path]
) -> None:
    """Every prompt format, examples, follow-ups and retries: the same text (prompts are
    built before the engine) becomes the same token ids, so budgets cut at the same table."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(embedded_model)

    def hf_count(text: str) -> int:
        return len(hf(text, add_special_tokens=False)["input_ids"])

    schema_text = hr_schema_text[0]
    requests = [
        {"question": "How many singers?", "database": {"name": "concert", "dialect": "sqlite"}},
        {
            "question": "Héllo — what's the total «budget»?",
            "database": {"name": "hr", "dialect": "postgres", "schema_text": schema_text},
            "examples": [{"question": "How many?", "sql": "SELECT COUNT(*) FROM employees"}],
        },
        {
            "question": "and by department?",
            "database": {"name": "hr", "dialect": "mysql", "schema_text": schema_text},
            "context": {"question": "How many employees?", "sql": "SELECT COUNT(*) FROM employees"},
            "previous": {"sql": "SELECT nme FROM employees", "error": "unknown column nme"},
        },
    ]
    for body in requests:
        request = GenerateRequest.model_validate(body)
        for fmt in ("seed", "schema"):
            full = prompt_for(request, fmt)
            assert llama.tokenize(full) == hf(full, add_special_tokens=False)["input_ids"]
            for budget in (130, 200, 400):  # budgets that cut tables, or leave no room at all
                ours = _outcome(request, fmt, budget, llama.count_tokens)
                assert ours == _outcome(request, fmt, budget, hf_count)


def test_a_gguf_lora_adapter_changes_answers_and_keeps_its_own_cache(
    hr_schema_text: tuple[str, Path], tmp_path: Path
) -> None:
    engine = LlamaCppEngine(LlamaCppConfig(model_path=embedded_gguf(), threads=2, parallel=4, cache_tokens=8192))
    try:
        engine.load_adapter("tuned", build_gguf_lora(tmp_path / "tuned.gguf", base=embedded_gguf()))
        assert engine.adapters == ("tuned",)
        prompt = _prompt(hr_schema_text[0], "How many employees are there?")
        engine.generate([prompt], adapters=[None], max_new_tokens=16)
        (base,) = engine.generate([prompt], adapters=[None], max_new_tokens=16)  # from the cache, as below
        (tuned,) = engine.generate([prompt], adapters=["tuned"], max_new_tokens=16)
        assert tuned.text != base.text
        assert tuned.cached_tokens == 0  # the base model's cached prompt is not the adapter's
        # Both kinds at once: each batch applies one adapter, never the other's. (A random
        # adapter's near-uniform logits make its own text sensitive to rounding; the base
        # model's answer is not, so it shows which weights each answer got.)
        futures = [engine.submit(prompt, adapter=a, max_new_tokens=16) for a in (None, "tuned", None, "tuned")]
        texts = [f.result(timeout=120).completion.text for f in futures]
        assert _same(texts[0], base.text) and _same(texts[2], base.text)
        assert not _same(texts[1], base.text) and not _same(texts[3], base.text)
        with pytest.raises(EngineError, match="already loaded"):
            engine.load_adapter("tuned", tmp_path / "tuned.gguf")
        engine.remove_adapter("tuned")
        with pytest.raises(EngineError, match="not loaded"):
            engine.submit(prompt, adapter="tuned", max_new_tokens=4)
    finally:
        engine.close()


def _outcome(request: GenerateRequest, fmt: str, budget: int, count: Callable[[str], int]) -> str:
    try:
        return prompt_for(request, fmt, max_tokens=budget, count_tokens=count)
    except PromptTooLong:
        return "PromptTooLong"


def test_the_worker_serves_the_llama_engine_and_closes_it(hr_schema_text: tuple[str, Path]) -> None:
    engine = LlamaCppEngine(LlamaCppConfig(model_path=embedded_gguf(), threads=2, parallel=2, cache_tokens=4096))

    async def run() -> list[str | None]:
        worker = Worker(load_engine=lambda: engine, options=WorkerOptions(max_new_tokens=64))
        worker.start()
        assert await worker.wait_ready(30)
        request = GenerateRequest.model_validate(
            {
                "question": "How many employees are there?",
                "database": {"name": "hr", "dialect": "sqlite", "schema_text": hr_schema_text[0]},
            }
        )
        responses = await asyncio.gather(worker.generate(request), worker.generate(request))
        await worker.stop()
        return [r.sql for r in responses]

    sqls = asyncio.run(run())
    assert sqls[0] is not None and sqls[1] is not None and _same(sqls[0], sqls[1]) and "count" in sqls[0].lower()
    with pytest.raises(EngineError, match="closed"):
        engine.submit("x", adapter=None, max_new_tokens=1)


def test_closing_answers_every_question_it_holds(hr_schema_text: tuple[str, Path]) -> None:
    engine = LlamaCppEngine(LlamaCppConfig(model_path=embedded_gguf(), threads=2, parallel=1, cache_tokens=4096))
    prompt = _prompt(hr_schema_text[0], "List every employee.")
    futures = [engine.submit(prompt, adapter=None, max_new_tokens=64) for _ in range(3)]  # one runs, two wait
    engine.close()
    for future in futures:  # none is left hanging: each is answered or told the engine closed
        exc = future.exception(timeout=30)
        assert exc is None or (isinstance(exc, EngineError) and "closed" in str(exc.message))


# --- choosing the engine and the dtype ----------------------------------------------------


def _settings(**kwargs: object) -> Settings:
    return Settings(_env_file=None, **kwargs)  # type: ignore[call-arg, arg-type]


def test_auto_picks_llamacpp_for_a_gguf_model_on_a_cpu() -> None:
    embedded = parse_source("pypi:qwen2.5-coder-0.5b")
    cpu = _settings(device="cpu")
    assert choose_engine(cpu, embedded, {}) == "llamacpp"
    assert choose_engine(cpu, parse_source("/models/x.gguf"), {}) == "llamacpp"
    assert choose_engine(cpu, parse_source("hub:Qwen/Qwen1.5-1.8B-Chat@abc"), {}) == "transformers"
    assert choose_engine(cpu, embedded, {"seed": parse_source("hub:a/seed@rev")}) == "transformers"
    assert choose_engine(cpu, embedded, {"seed": parse_source("/adapters/seed.gguf")}) == "llamacpp"
    assert choose_engine(_settings(device="cpu", quantization="nf4"), embedded, {}) == "transformers"
    assert choose_engine(_settings(device="cuda"), embedded, {}) == "transformers"
    assert choose_engine(_settings(device="cpu", engine="transformers"), embedded, {}) == "transformers"


def test_llamacpp_asked_for_with_a_peft_adapter_says_so_before_loading(tmp_path: Path) -> None:
    settings = _settings(
        data_dir=tmp_path / "data", device="cpu", engine="llamacpp", adapters={"seed": {"source": "hub:a/seed@rev"}}
    )
    with pytest.raises(EngineError, match=r"adapter 'seed': the llama.cpp engine loads LoRA adapters as \.gguf"):
        engine_loader(settings)()
    assert not (tmp_path / "data").exists()  # nothing joined, downloaded or written


def test_auto_dtype_is_float32_on_a_cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert auto_dtype("cpu") == "float32"
    assert engine_module._dtype("auto", "cpu") is torch.float32
    assert engine_module.dtype_reason("auto", "cpu") == "auto: no native bf16 on this CPU"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert auto_dtype("cpu") == "bfloat16"
    assert auto_dtype("cuda") == "float16"
    assert engine_module._dtype("float32", "cpu") is torch.float32  # an explicit choice stands


def test_sampled_candidates_read_the_prompt_once(llama: LlamaCppEngine, hr_schema_text: tuple[str, Path]) -> None:
    """The greedy answer reads the prompt; each sample then reads one token of its own. (Which
    tokens they draw is not compared across calls: the unified cache places cells wherever they
    are free, and a near-tie can flip, see ``_same``; the sampler itself is seeded, below.)"""
    schema_text, _ = hr_schema_text
    prompt = _prompt(schema_text, "Which employees of the Sales department earn the most? (samples)")
    completions = [f.result().completion for f in llama.submit_samples(
        prompt, adapter=None, max_new_tokens=48, n=3, temperature=0.9, seed=7
    )]  # fmt: skip
    assert len(completions) == 4 and all("select" in c.text.lower() for c in completions)
    for sample in completions[1:]:
        assert sample.cached_tokens == sample.prompt_tokens - 1  # only the last prompt token read again


def test_the_sampler_is_seeded() -> None:
    import numpy as np

    from inference.llamacpp import sample_token

    logits = np.random.default_rng(0).normal(size=1000).astype(np.float32)

    def draws(seed: int) -> list[int]:
        rng = np.random.default_rng(seed)
        return [sample_token(logits, temperature=1.0, rng=rng) for _ in range(20)]

    assert draws(7) == draws(7) and draws(7) != draws(8)
    top = set(np.argsort(-logits)[:40].tolist())
    assert set(draws(7)) <= top  # never outside the top 40


def test_the_worker_returns_sampled_candidates(hr_schema_text: tuple[str, Path]) -> None:
    schema_text, _ = hr_schema_text

    async def run() -> list[str]:
        config = LlamaCppConfig(model_path=embedded_gguf(), threads=2, parallel=4, cache_tokens=4096)
        worker = Worker(load_engine=lambda: LlamaCppEngine.load(config), options=WorkerOptions())
        worker.start()
        assert await worker.wait_ready(60)
        try:
            request = GenerateRequest.model_validate(
                {
                    "question": "How many employees are there?",
                    "database": {"name": "hr", "schema_text": schema_text},
                    "samples": 2,
                }
            )
            response = await worker.generate(request)
            alone = await worker.generate(request.model_copy(update={"samples": 0}))
        finally:
            await worker.stop()
        assert "count" in response.sql.lower() and response.completion_tokens > alone.completion_tokens
        return response.candidates

    candidates = asyncio.run(run())
    assert len(candidates) == 2 and all("count" in c.lower() for c in candidates)
