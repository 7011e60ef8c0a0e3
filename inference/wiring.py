"""One place that wires the worker from settings: engine loader, keys, limiter, app."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from chat2sql.ratelimit import make_rate_limiter
from chat2sql.settings import Settings
from inference.engine import Engine, EngineConfig
from inference.keys import KeyStore
from inference.server import build_app
from inference.service import Worker, WorkerOptions
from inference.sources import parse_source, resolve


def engine_loader(
    settings: Settings, *, model: str | None = None, adapters: dict[str, str] | None = None
) -> Callable[[], Engine]:
    """A function that resolves the sources (download/convert once) and loads everything."""
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    adapter_sources = adapters if adapters is not None else {n: a.source for n, a in settings.adapters.items()}

    def load() -> Engine:
        path = resolve(parse_source(model or settings.model), cache_dir=settings.model_cache_dir, hf_token=token)
        engine = Engine.load(
            EngineConfig(
                model_path=path,
                device=settings.device,
                quantization=settings.quantization,
                dtype=settings.dtype,
            )
        )
        for name, source in adapter_sources.items():
            engine.load_adapter(name, resolve(parse_source(source), cache_dir=settings.model_cache_dir, hf_token=token))
        return engine

    return load


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


def build_worker_app(settings: Settings, *, load_engine: Callable[[], Engine] | None = None) -> FastAPI:
    if settings.deploy_config is not None:  # deploy/config.yaml names the model and adapters
        from deploy.config import settings_with_deploy_config

        settings = settings_with_deploy_config(settings)
    worker = Worker(load_engine=load_engine or engine_loader(settings), options=worker_options(settings))
    return build_app(
        worker=worker,
        keys=KeyStore.open(settings),
        limiter=make_rate_limiter(settings.redis_url),
        max_body_bytes=settings.worker_max_body_bytes,
    )
