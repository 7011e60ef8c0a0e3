"""Model fixtures: the embedded offline model (converted once into a cache that survives
between runs) and a tiny random Qwen2 model with a random LoRA adapter built from it."""

from __future__ import annotations

from pathlib import Path

from inference.sources import EMBEDDED, join_embedded_gguf, parse_source, resolve

ROOT = Path(__file__).resolve().parents[1]
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


__all__ = [
    "EMBEDDED",
    "TEST_CACHE",
    "build_tiny_adapter",
    "build_tiny_model",
    "embedded_gguf",
    "embedded_model_dir",
]
