"""One place that wires the worker from settings: engine loader, keys, limiter, app."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI

from chat2sql.ratelimit import make_rate_limiter
from chat2sql.settings import Settings
from inference.engine import Engine, EngineConfig, EngineError, GenerationEngine
from inference.keys import KeyStore
from inference.server import build_app
from inference.service import Worker, WorkerOptions
from inference.sources import ModelSource, gguf_file, is_gguf, parse_source, resolve

log = logging.getLogger(__name__)


def engine_loader(
    settings: Settings, *, model: str | None = None, adapters: dict[str, str] | None = None
) -> Callable[[], GenerationEngine]:
    """A function that resolves the sources (download/convert once) and loads everything."""
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    adapter_sources = adapters if adapters is not None else {n: a.source for n, a in settings.adapters.items()}

    def load() -> GenerationEngine:
        source = parse_source(model or settings.model)
        adapter_list = {name: parse_source(s) for name, s in adapter_sources.items()}
        choice = choose_engine(settings, source, adapter_list)
        engine: GenerationEngine
        if choice == "llamacpp":
            from inference.llamacpp import LlamaCppConfig, LlamaCppEngine, not_a_gguf_adapter

            for name, adapter in adapter_list.items():  # before anything is joined or loaded
                if not is_gguf(adapter):
                    raise not_a_gguf_adapter(name)
            path = gguf_file(source, cache_dir=settings.model_cache_dir)
            if path is None:
                raise EngineError(f"the llama.cpp engine needs a GGUF model; '{source}' is not one")
            engine = LlamaCppEngine.load(
                LlamaCppConfig(
                    model_path=path,
                    threads=settings.threads,
                    parallel=settings.llamacpp_parallel,
                    cache_tokens=settings.llamacpp_cache_tokens,
                )
            )
        else:
            engine = Engine.load(
                EngineConfig(
                    model_path=resolve(source, cache_dir=settings.model_cache_dir, hf_token=token),
                    device=settings.device,
                    quantization=settings.quantization,
                    dtype=settings.dtype,
                    threads=settings.threads,
                )
            )
        for name, adapter in adapter_list.items():
            adapter_path = (
                gguf_file(adapter, cache_dir=settings.model_cache_dir)
                if choice == "llamacpp"
                else resolve(adapter, cache_dir=settings.model_cache_dir, hf_token=token)
            )
            assert adapter_path is not None  # every adapter is a GGUF file when the engine is llama.cpp (above)
            engine.load_adapter(name, adapter_path)
        return engine

    return load


def choose_engine(settings: Settings, source: ModelSource, adapters: dict[str, ModelSource]) -> str:
    """``CHAT2SQL_ENGINE``, or for ``auto``: llama.cpp for a GGUF model (and GGUF adapters,
    if any) on a CPU without NF4 asked for, transformers otherwise. Logged once."""
    if settings.engine != "auto":
        choice, reason = settings.engine, "set by CHAT2SQL_ENGINE"
    elif not is_gguf(source):
        choice, reason = "transformers", "the model is not a GGUF file"
    elif any(not is_gguf(a) for a in adapters.values()):
        choice, reason = "transformers", "an adapter is not a GGUF file (peft adapters need transformers)"
    elif settings.quantization == "nf4":
        choice, reason = "transformers", "NF4 quantization was asked for"
    elif _on_cuda(settings.device):
        choice, reason = "transformers", "a CUDA GPU is in use"
    else:
        choice, reason = "llamacpp", "a GGUF model on a CPU"
    log.info("engine chosen", extra={"fields": {"engine": choice, "reason": reason, "model": str(source)}})
    return choice


def _on_cuda(device: str) -> bool:
    if device == "cpu":
        return False
    if device == "cuda":
        return True
    import torch

    return bool(torch.cuda.is_available())


def worker_options(settings: Settings) -> WorkerOptions:
    return WorkerOptions(
        default_adapter=settings.default_adapter,
        default_prompt_format=settings.default_prompt_format,
        adapter_formats={name: spec.prompt_format for name, spec in settings.adapters.items()},
        max_new_tokens=settings.max_new_tokens,
        max_input_tokens=settings.max_input_tokens,
        batch_max_size=settings.batch_max_size,
        batch_max_wait_s=settings.batch_max_wait_ms / 1000,
        cold_start_wait_s=settings.cold_start_wait_s,
    )


def build_worker_app(settings: Settings, *, load_engine: Callable[[], GenerationEngine] | None = None) -> FastAPI:
    """The worker's HTTP API over ``settings`` as they come (``deploy.worker`` applies the
    deployment's file first)."""
    worker = Worker(load_engine=load_engine or engine_loader(settings), options=worker_options(settings))
    return build_app(
        worker=worker,
        keys=KeyStore.open(settings),
        limiter=make_rate_limiter(settings.redis_url),
        max_body_bytes=settings.worker_max_body_bytes,
    )


def serve_worker(app: FastAPI, settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run the worker's app until stopped (``python -m inference serve``, ``python -m deploy.worker``)."""
    import uvicorn

    uvicorn.run(
        app, host=host or settings.worker_host, port=port or settings.worker_port, log_config=None, access_log=False
    )
