"""The engine, adapters and batching on a tiny random Qwen2 model built in a fixture."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from inference.batching import Batcher
from inference.engine import Engine, EngineConfig, EngineError

PROMPTS = [
    "<|im_start|>user\nHow many singers?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nList every department with more than three employees, by name.<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module")
def engine(tiny_model: Path, tiny_adapters: dict[str, Path]) -> Engine:
    eng = Engine.load(EngineConfig(model_path=tiny_model, device="cpu", dtype="float32"))
    for name, path in tiny_adapters.items():
        eng.load_adapter(name, path)
    return eng


def _texts(engine: Engine, prompts: list[str], adapters: list[str | None], n: int = 12) -> list[str]:
    return [c.text for c in engine.generate(prompts, adapters=adapters, max_new_tokens=n)]


def test_generates_and_counts_tokens(engine: Engine) -> None:
    [completion] = engine.generate(PROMPTS[:1], adapters=[None], max_new_tokens=8)
    assert 0 < completion.completion_tokens <= 8
    assert completion.prompt_tokens == engine.count_tokens(PROMPTS[0])
    assert "<|im_end|>" not in completion.text and "<|endoftext|>" not in completion.text


def test_batched_equals_unbatched(engine: Engine) -> None:
    """Left padding and the attention mask keep each answer independent of its batch."""
    alone = [_texts(engine, [p], [None])[0] for p in PROMPTS]
    assert _texts(engine, PROMPTS, [None] * 3) == alone


def test_counting_tokens_while_a_batch_is_tokenized_is_safe(engine: Engine) -> None:
    """A token count (no padding) racing a padded batch once left the batch unpadded: the fast
    tokenizer keeps its padding settings in shared state (seen under load with the real model)."""
    import threading

    stop = threading.Event()
    failures: list[BaseException] = []

    def count() -> None:
        while not stop.is_set():
            try:
                engine.count_tokens("SELECT name FROM employees WHERE id > 3 ORDER BY name")
            except BaseException as err:  # pragma: no cover - the bug this guards against
                failures.append(err)

    counters = [threading.Thread(target=count) for _ in range(4)]
    for t in counters:
        t.start()
    try:
        prompts = ["short", "a somewhat longer prompt " * 40, "medium length prompt here " * 10]
        for _ in range(200):
            engine.generate(prompts, adapters=[None, None, None], max_new_tokens=1)
    finally:
        stop.set()
        for t in counters:
            t.join()
    assert failures == []


def test_adapters_change_output_and_mix_in_one_batch(engine: Engine) -> None:
    base = _texts(engine, PROMPTS[:1], [None])[0]
    alpha = _texts(engine, PROMPTS[:1], ["alpha"])[0]
    beta = _texts(engine, PROMPTS[:1], ["beta"])[0]
    assert len({base, alpha, beta}) == 3
    mixed = _texts(engine, [PROMPTS[0]] * 3, [None, "alpha", "beta"])
    assert mixed == [base, alpha, beta]


def test_adapters_added_and_removed_without_restart(engine: Engine, tiny_adapters: dict[str, Path]) -> None:
    engine.load_adapter("gamma", tiny_adapters["alpha"])
    assert _texts(engine, PROMPTS[:1], ["gamma"]) == _texts(engine, PROMPTS[:1], ["alpha"])
    engine.remove_adapter("gamma")
    assert "gamma" not in engine.adapters
    with pytest.raises(EngineError):
        engine.generate(PROMPTS[:1], adapters=["gamma"], max_new_tokens=4)
    with pytest.raises(EngineError):
        engine.load_adapter("alpha", tiny_adapters["alpha"])


def test_stops_on_both_stop_tokens(engine: Engine) -> None:
    tok = engine._tokenizer
    assert sorted(engine._stop_ids) == sorted(tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]))
    assert sorted(engine._stop_ids) == [151643, 151645]


def test_nf4_on_cpu(tiny_model: Path) -> None:
    """The seed's 4-bit NF4 path (bitsandbytes, pinned in requirements.txt, runs it on CPU too)."""
    nf4 = Engine.load(EngineConfig(model_path=tiny_model, device="cpu", quantization="nf4"))
    [completion] = nf4.generate(PROMPTS[:1], adapters=[None], max_new_tokens=4)
    assert completion.completion_tokens > 0
    assert "Linear4bit" in {type(m).__name__ for m in nf4._model.modules()}


@pytest.mark.asyncio
async def test_batcher_groups_concurrent_requests(engine: Engine) -> None:
    batcher = Batcher(engine=engine, max_batch_size=8, max_wait_s=0.2)
    try:
        results = await asyncio.gather(
            *(
                batcher.submit(p, adapter=a, max_new_tokens=12)
                for p, a in zip(PROMPTS * 2, [None, "alpha"] * 3, strict=True)
            )
        )
    finally:
        await batcher.stop()
    assert batcher.batches_run == 1 and {r.batch_size for r in results} == {6}
    for (prompt, adapter), result in zip(zip(PROMPTS * 2, [None, "alpha"] * 3, strict=True), results, strict=True):
        assert result.completion.text == _texts(engine, [prompt], [adapter])[0]


@pytest.mark.asyncio
async def test_batcher_separates_different_lengths_and_reports_failures(engine: Engine) -> None:
    batcher = Batcher(engine=engine, max_batch_size=8, max_wait_s=0.1)
    try:
        short, _ = await asyncio.gather(
            batcher.submit(PROMPTS[0], adapter=None, max_new_tokens=2),
            batcher.submit(PROMPTS[0], adapter=None, max_new_tokens=12),
        )
        assert short.completion.completion_tokens <= 2 and batcher.batches_run == 2
        with pytest.raises(EngineError):
            await batcher.submit(PROMPTS[0], adapter="missing", max_new_tokens=2)
    finally:
        await batcher.stop()


def test_sampling_is_seeded_and_differs_from_greedy(engine: Engine) -> None:
    def sampled(seed: int) -> list[str]:
        out = engine.generate(PROMPTS[:1] * 3, adapters=[None] * 3, max_new_tokens=12, temperature=1.5, seed=seed)
        return [c.text for c in out]

    assert sampled(3) == sampled(3)  # the same seed, the same candidates
    greedy = _texts(engine, PROMPTS[:1], [None])[0]
    assert any(text != greedy for text in sampled(3) + sampled(4))  # a random tiny model: far from greedy


@pytest.mark.asyncio
async def test_batcher_samples_beside_the_greedy_answer(engine: Engine) -> None:
    batcher = Batcher(engine=engine, max_batch_size=8, max_wait_s=0.1)
    try:
        results = await batcher.submit_samples(PROMPTS[0], adapter=None, max_new_tokens=12, n=3, temperature=1.5)
    finally:
        await batcher.stop()
    assert len(results) == 4 and results[0].completion.text == _texts(engine, PROMPTS[:1], [None])[0]
    assert {r.batch_size for r in results[1:]} == {3} and batcher.batches_run == 2  # the samples: one call
