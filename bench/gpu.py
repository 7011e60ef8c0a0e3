"""GPU benchmark of the engine's generation path, with no downloads.

    python -m bench.gpu [--dtypes bf16 nf4] [--batches 1 8] [--runs 5]

Builds a random-weight model from Qwen1.5-1.8B-Chat's configuration (written out below,
so nothing comes from the hub), loads it the way ``inference.engine`` does (bf16, and the
seed's NF4 config via ``nf4_config`` where bitsandbytes is installed), and generates 128
new tokens per row with EOS ignored from a 256-token prompt, at batch 1 and 8. Prints
tokens/s and latency p50/p99. Run it wherever a CUDA GPU is available.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NEW_TOKENS = 128
PROMPT_TOKENS = 256

# Qwen/Qwen1.5-1.8B-Chat config.json (the fields that shape compute).
QWEN15_18B = {
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 5504,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}


def _build(folder: Path) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(**QWEN15_18B)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return folder


def _load(folder: Path, kind: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    from inference.engine import nf4_config

    if kind == "nf4":
        return AutoModelForCausalLM.from_pretrained(
            folder, quantization_config=nf4_config("cuda"), device_map={"": 0}, dtype=torch.float16
        ).eval()
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to("cuda").eval()


def _run(model: Any, batch: int, runs: int) -> tuple[float, float, float]:
    import torch

    ids = torch.randint(1000, 100_000, (batch, PROMPT_TOKENS), device="cuda")
    mask = torch.ones_like(ids)
    kwargs = {
        "do_sample": False,
        "max_new_tokens": NEW_TOKENS,
        "min_new_tokens": NEW_TOKENS,
        "pad_token_id": 151643,
    }
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=mask, **kwargs)  # warm-up
        latencies = []
        for _ in range(runs):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            torch.cuda.synchronize()
            latencies.append(time.perf_counter() - t0)
    tokens_per_s = batch * NEW_TOKENS / statistics.median(latencies)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return tokens_per_s, q[49] * 1000, q[98] * 1000


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "nf4"], choices=["bf16", "nf4"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU here; run this where one is available", file=sys.stderr)
        return 2
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = _build(Path(tmp) / "qwen15-18b-random")
        for kind in args.dtypes:
            if kind == "nf4" and importlib.util.find_spec("bitsandbytes") is None:
                print("bitsandbytes not installed: NF4 skipped", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            model = _load(folder, kind)
            load_s = time.perf_counter() - t0
            mem = torch.cuda.max_memory_allocated() / 2**30
            for batch in args.batches:
                tps, p50, p99 = _run(model, batch, args.runs)
                rows.append(
                    [
                        kind,
                        str(batch),
                        f"{tps:.0f}",
                        f"{p50:.0f}",
                        f"{p99:.0f}",
                        f"{load_s:.1f}",
                        f"{mem:.2f}",
                    ]
                )
            del model
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    header = ["weights", "batch", "tokens/s", "p50 ms", "p99 ms", "load s", "peak GiB"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"Qwen1.5-1.8B shape, random weights, {PROMPT_TOKENS}-token prompt, {NEW_TOKENS} new tokens (EOS ignored)")
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
