"""``python -m bot serve``: one ASGI app for every chat platform.

Routes: ``/healthz``, ``/metrics``, ``/mcp`` (the MCP server over streamable HTTP, behind
the API keys: ``bot.mcp_server``; ``CHAT2SQL_MCP_HTTP=false`` leaves it out), and those of
each configured platform: Slack's ``/slack/events`` (plus ``/slack/install`` and
``/slack/oauth_redirect`` with OAuth), Teams' ``/api/messages``. A platform is configured by
its settings; with none, the server still starts (health, metrics, MCP) and says so in its log.

Nothing slow runs before a platform's acknowledgement: answers are produced in background
tasks that the app tracks and drains on shutdown. The platforms come from ``bot.wiring``; what
they share (context, background tasks, the answering policy) from ``bot.platform``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route

from bot import mcp_server
from bot.core.assistant import Assistant
from bot.platform import Platform, ServerContext
from chat2sql.settings import Settings

log = logging.getLogger(__name__)


def build_app(
    settings: Settings,
    *,
    assistant: Assistant | None = None,
    platforms: Sequence[Platform] | None = None,
    context: ServerContext | None = None,
) -> FastAPI:
    """The ASGI app. Tests pass an assistant with a fake model, or whole platforms. An
    in-process model it wires itself starts loading at start-up, not at the first question."""
    from bot import wiring  # the top of bot/: it knows every platform; the server only mounts them

    start_model: Callable[[], None] | None = None
    if context is None:
        if assistant is None:
            client = wiring.inference_client(settings)
            assistant = wiring.build_assistant(settings, client=client)
            start_model = wiring.background_load(client)
        context = wiring.server_context(settings, assistant)
    ctx = context
    chosen = list(platforms) if platforms is not None else wiring.platforms(ctx)
    mcp = _McpEndpoint(settings, ctx.assistant) if settings.mcp_http else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not chosen:
            log.warning("no chat platform is configured: serving /healthz and /metrics only (see README)")
        if start_model is not None:
            start_model()
            log.info("loading the model in the background")
        for platform in chosen:
            await platform.start()
        # Everything start-up made lives as long as the process: out of the collector's sight, a
        # full collection walks what questions allocate, not the whole import heap (a ~100 ms
        # pause otherwise, bench/core_bench.py --gc-freeze).
        gc.freeze()
        try:
            if mcp is None:
                yield
            else:
                async with mcp.running():
                    yield
        finally:
            for platform in reversed(chosen):
                await platform.stop()
            await ctx.background.drain()
            await ctx.assistant.close()

    app = FastAPI(title="chat2sql bot", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.context = ctx

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "platforms": [p.name for p in chosen], "in_flight": len(ctx.background)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for platform in chosen:
        platform.mount(app)
    if mcp is not None:
        app.router.routes.append(Route(mcp_server.HTTP_PATH, mcp.app, methods=["GET", "POST", "DELETE"]))
    return app


class _McpEndpoint:
    """``/mcp``: the MCP server on the app's assistant, its key store and its rate limiter."""

    def __init__(self, settings: Settings, assistant: Assistant) -> None:
        from chat2sql.ratelimit import make_rate_limiter
        from inference.keys import KeyStore

        self.server = mcp_server.Chat2SQLServer(assistant)
        self.keys = KeyStore.open(settings)
        self.limiter = make_rate_limiter(settings.redis_url)
        self.app = mcp_server.http_app(self.server, keys=self.keys, limiter=self.limiter)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            async with self.server.session_manager.run():
                yield
        finally:
            await self.limiter.close()
            self.keys.close()


def create_app() -> FastAPI:
    """Factory for ASGI servers (``uvicorn --factory bot.server:create_app``) and Modal."""
    return build_app(Settings())


def serve(settings: Settings) -> int:
    import uvicorn

    app = build_app(settings)
    uvicorn.run(app, host=settings.server_host, port=settings.server_port, log_config=None, access_log=False)
    return 0
