"""Model fixtures: the embedded offline model (converted once into a cache that survives
between runs) and a tiny random Qwen2 model with a random LoRA adapter built from it."""

from __future__ import annotations

from pathlib import Path

from inference.sources import EMBEDDED, join_embedded_gguf, parse_source, resolve

ROOT = Path(__file__).resolve().parents[2]
TEST_CACHE = ROOT / "data" / "test-models"


def embedded_model_dir() -> Path:
    return resolve(parse_source(EMBEDDED), cache_dir=TEST_CACHE)


def embedded_gguf() -> Path:
    """The offline model's GGUF file, joined and verified once: what the llama.cpp engine loads."""
    return join_embedded_gguf(TEST_CACHE / "gguf")


def build_tiny_model(target: Path, *, tokenizer_from: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_tiny_adapter(target: Path, *, base: Path, seed: int = 1) -> Path:
    """A LoRA adapter with the seed's shape (r=16, alpha=32, q/k/v/o) and random B weights,
    so that it visibly changes the output (a fresh adapter's B is all zeros)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(target)
    return target


def build_gguf_lora(target: Path, *, base: Path, rank: int = 8, alpha: float = 16.0, seed: int = 1) -> Path:
    """A random LoRA adapter in llama.cpp's GGUF form for ``base`` (a Qwen2 GGUF model), on the
    query projection of every layer: the layout ``convert_lora_to_gguf.py`` writes (A is
    ``rank x n_in``, B ``n_out x rank`` in numpy order), with B large enough to change answers."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(base)
    layers = int(reader.fields["qwen2.block_count"].parts[-1][0])
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(target), arch="qwen2")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for layer in range(layers):
        name = f"blk.{layer}.attn_q.weight"
        n_in, n_out = shapes[name]
        writer.add_tensor(f"{name}.lora_a", rng.normal(0, 0.05, (rank, n_in)).astype(np.float32))
        writer.add_tensor(f"{name}.lora_b", rng.normal(0, 0.5, (n_out, rank)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


__all__ = [
    "EMBEDDED",
    "TEST_CACHE",
    "build_gguf_lora",
    "build_tiny_adapter",
    "build_tiny_model",
    "embedded_gguf",
    "embedded_model_dir",
]
