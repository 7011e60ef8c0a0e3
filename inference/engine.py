"""The generation engine: a causal LM (transformers) with LoRA adapters (peft).

The worker runs any ``GenerationEngine``: this one, or the llama.cpp engine
(``inference.llamacpp``) for GGUF weights on a CPU.

- CUDA: the base model in 4-bit NF4 with bitsandbytes, double quantization and fp16
  compute — the seed's training and serving configuration.
- CPU: float32, or bf16 where the CPU computes it natively (torch reports AVX512-BF16 or
  AMX; elsewhere torch emulates bf16, 2–4x slower than float32), or NF4 when asked
  (bitsandbytes 0.50 runs it on CPU).
- Adapters are loaded by name, chosen per request, added and removed without a restart;
  one batch may mix adapters (peft's ``adapter_names``).
- Greedy decoding by default, stopping on both ``<|im_end|>`` and ``<|endoftext|>``
  (the seed passed only one id and so overrode Qwen's two stop ids).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from chat2sql.errors import UserFacingError

log = logging.getLogger(__name__)

STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch

Quantization = Literal["auto", "none", "nf4"]
DType = Literal["auto", "bfloat16", "float16", "float32"]


class EngineError(UserFacingError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def message(self) -> str:
        return self.detail


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    model_path: Path
    device: str = "auto"
    quantization: Quantization = "auto"
    dtype: DType = "auto"
    threads: int | None = None


@dataclass(frozen=True, kw_only=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose key/value state came from the engine's cache


@dataclass(frozen=True, kw_only=True)
class Batched:
    """A completion as a batching scheduler hands it back."""

    completion: Completion
    queue_ms: float
    batch_size: int


class GenerationEngine(Protocol):
    """What the worker needs of an engine (transformers' ``Engine``, ``LlamaCppEngine``)."""

    name: str
    device: str

    @property
    def adapters(self) -> tuple[str, ...]: ...

    def count_tokens(self, text: str) -> int: ...

    def load_adapter(self, name: str, path: Path) -> None: ...

    def remove_adapter(self, name: str) -> None: ...

    def generate(
        self,
        prompts: list[str],
        *,
        adapters: list[str | None],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[Completion]: ...


TOP_K, TOP_P = 40, 0.95  # what sampling keeps (temperature > 0), as the llama.cpp engine


class Engine:
    """Not thread-safe by itself: the batcher calls ``generate`` from one thread at a time."""

    def __init__(self, *, model: Any, tokenizer: Any, device: str, name: str) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.device = device
        self.name = name
        self._adapters: dict[str, Path] = {}
        self._lock = threading.Lock()
        # A fast tokenizer keeps its padding settings in shared state and sets them on every
        # call: a count (no padding) racing a batch (padding) leaves the batch unpadded.
        # Every tokenizer call holds this short lock (never the long generation lock).
        self._tokenizer_lock = threading.Lock()
        self._stop_ids = [i for i in tokenizer.convert_tokens_to_ids(list(STOP_TOKENS)) if i is not None]
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = "<|endoftext|>"
        tokenizer.padding_side = "left"

    @classmethod
    def load(cls, config: EngineConfig) -> Engine:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        device = _device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        dtype = _dtype(config.dtype, device)
        kwargs: dict[str, Any] = {"dtype": dtype}
        if _quantization(config.quantization, device) == "nf4":
            kwargs["quantization_config"] = nf4_config(device)
            kwargs["device_map"] = {"": 0 if device == "cuda" else "cpu"}
        tokenizer = AutoTokenizer.from_pretrained(config.model_path)
        model: Any = AutoModelForCausalLM.from_pretrained(config.model_path, **kwargs)
        if "quantization_config" not in kwargs:
            model.to(device)
        model.eval()
        log.info(
            "model loaded",
            extra={
                "fields": {
                    "model": str(config.model_path),
                    "device": device,
                    "dtype": str(dtype).removeprefix("torch."),
                    "dtype_reason": dtype_reason(config.dtype, device),
                    "load_s": round(time.perf_counter() - started, 2),
                }
            },
        )
        return cls(model=model, tokenizer=tokenizer, device=device, name=config.model_path.name)

    @property
    def adapters(self) -> tuple[str, ...]:
        return tuple(self._adapters)

    def count_tokens(self, text: str) -> int:
        with self._tokenizer_lock:
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def load_adapter(self, name: str, path: Path) -> None:
        """Add a LoRA adapter by name; a running engine keeps serving the others."""
        from peft import PeftModel

        with self._lock:
            if name in self._adapters:
                raise EngineError(f"adapter '{name}' is already loaded")
            if not self._adapters and not isinstance(self._model, PeftModel):
                self._model = PeftModel.from_pretrained(self._model, str(path), adapter_name=name)
            else:
                self._model.load_adapter(str(path), adapter_name=name)
            self._model.eval()
            self._adapters[name] = path

    def remove_adapter(self, name: str) -> None:
        with self._lock:
            if name not in self._adapters:
                raise EngineError(f"adapter '{name}' is not loaded")
            self._model.delete_adapter(name)
            del self._adapters[name]

    def generate(
        self,
        prompts: list[str],
        *,
        adapters: list[str | None],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[Completion]:
        """Greedy completions, or sampled ones at ``temperature`` (> 0) from ``seed``."""
        """Greedy completions for a batch; each row may use its own adapter (or none)."""
        import torch

        if len(prompts) != len(adapters):
            raise EngineError("one adapter entry per prompt")
        for adapter in adapters:
            if adapter is not None and adapter not in self._adapters:
                raise EngineError(f"adapter '{adapter}' is not loaded")
        with self._lock:
            with self._tokenizer_lock:
                batch = self._tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(self._model.device) for k, v in batch.items()}
            kwargs: dict[str, Any] = {"do_sample": False}
            if temperature > 0:
                torch.manual_seed(seed)
                kwargs = {"do_sample": True, "temperature": temperature, "top_k": TOP_K, "top_p": TOP_P}
            if self._adapters:
                kwargs["adapter_names"] = [a or BASE_ADAPTER for a in adapters]
            with torch.inference_mode():
                output = self._model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=self._stop_ids,
                    pad_token_id=self._tokenizer.pad_token_id,
                    **kwargs,
                )
        prompt_len = batch["input_ids"].shape[1]
        results = []
        for row, mask in zip(output, batch["attention_mask"], strict=True):
            generated = row[prompt_len:].tolist()
            kept = []
            for token in generated:
                if token in self._stop_ids:
                    break
                kept.append(token)
            with self._tokenizer_lock:
                text = self._tokenizer.decode(kept, skip_special_tokens=False)
            results.append(
                Completion(
                    text=text,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(kept),
                )
            )
        return results


def nf4_config(device: str) -> Any:
    """The seed's quantization: 4-bit NF4, double quantization, fp16 compute (bf16 on CPU)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.float16 if device == "cuda" else torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def _device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise EngineError("CUDA was requested but no GPU is available")
    return requested


def _quantization(requested: Quantization, device: str) -> Quantization:
    if requested == "auto":
        return "nf4" if device == "cuda" else "none"
    return requested


def _dtype(requested: DType, device: str) -> Any:
    import torch

    return getattr(torch, auto_dtype(device) if requested == "auto" else requested)


def auto_dtype(device: str) -> str:
    """fp16 on CUDA; on a CPU bf16 only where it computes bf16 natively, float32 elsewhere."""
    if device == "cuda":
        return "float16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def cpu_has_native_bf16() -> bool:
    """Whether torch reports bf16 instructions on this CPU (AVX512-BF16 or AMX tiles)."""
    import torch

    cpu: Any = torch.cpu
    try:
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: assume emulation, the safe choice
        return False


def dtype_reason(requested: DType, device: str) -> str:
    if requested != "auto":
        return "set by CHAT2SQL_DTYPE"
    if device == "cuda":
        return "auto: CUDA"
    return "auto: the CPU has native bf16" if cpu_has_native_bf16() else "auto: no native bf16 on this CPU"
