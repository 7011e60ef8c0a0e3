"""What the MCP server adds to a question, over the console's path.

    .venv/bin/python -m bench.mcp_bench [--questions N]

A scripted instant engine stands in for the model, on the sample SQLite database; the cache
is off, so every question takes the full path (rate limit, resolve, schema, guard, short
run, audit row). Three ways in, one after another in one process: the core as the console
calls it (``Assistant.ask``), the ``ask`` tool through an in-process MCP session
(``mcp.Client(server)``), and the same tool over streamable HTTP through the bot's app
(``/mcp``: the key check, its rate limit, JSON-RPC over HTTP, in process, no socket),
interleaved question by question. The difference of medians is the MCP overhead. Compare within one run: this machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.table import print_table
from bot.console import console_where
from bot.core.access import Admins
from bot.core.assistant import AssistantConfig
from bot.mcp_server import Chat2SQLServer, local_caller
from bot.server import build_app
from bot.state import assistant_over
from bot.store import BotStore
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import TIERS, InMemoryRateLimiter, Limit
from chat2sql.settings import Settings
from inference.keys import KeyStore
from schemas.registry import Registry
from tests.support.clients import SampledClient
from tests.support.databases import make_sqlite, sample_script

SQL = "SELECT department_id, COUNT(*) AS n FROM employees GROUP BY department_id"
UNLIMITED = Limit(10**6, 10**6)


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def _run(folder: Path, questions: int) -> list[list[str]]:
    settings = Settings(data_dir=folder / "data", _env_file=None)  # type: ignore[call-arg]
    registry = Registry.open(settings)
    registry.add("hr", make_sqlite(folder / "hr.db", sample_script("sqlite")), registered_by="bench")
    assistant = assistant_over(
        registry=registry,
        store=BotStore.open(settings),
        client=SampledClient(lambda _: [SQL]),
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse(""),
        config=AssistantConfig(user_limit=UNLIMITED, workspace_limit=UNLIMITED, cache_ttl_s=0),
    )
    keys = KeyStore.open(settings)
    key = keys.create("bench", "internal")
    keys.close()
    TIERS["internal"] = UNLIMITED  # this process only: the bench measures, it does not throttle
    app = build_app(settings, assistant=assistant, platforms=[])
    transport = httpx2.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {key}"}
    async with (
        Client(Chat2SQLServer(assistant, caller=local_caller("bench"))) as local,
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=transport, base_url="http://bot.local", headers=headers) as http,
        Client(streamable_http_client("http://bot.local/mcp", http_client=http)) as remote,
    ):

        async def console(i: int) -> None:
            reply = await assistant.ask(f"employees per department, take {i}", console_where(), database="hr")
            assert reply.answer is not None, reply.text

        def tool(client: Client) -> Callable[[int], Awaitable[None]]:
            async def ask(i: int) -> None:
                result = await client.call_tool("ask", {"database": "hr", "question": f"per department, take {i}"})
                assert not result.is_error

            return ask

        paths = {
            "console (Assistant.ask)": console,
            "MCP ask, in-process session": tool(local),
            "MCP ask, streamable HTTP + key": tool(remote),
        }
        results: dict[str, list[float]] = {label: [] for label in paths}
        for i in range(-1, questions):  # interleaved, so that drift hits every path alike; -1 warms up
            for label, one in paths.items():
                started = time.perf_counter()
                await one(i)
                if i >= 0:
                    results[label].append((time.perf_counter() - started) * 1000)
    base = statistics.median(results["console (Assistant.ask)"])
    return [
        [label, str(len(t)), f"{_pct(t, 50):.2f}", f"{_pct(t, 99):.2f}", f"{statistics.median(t) - base:+.2f}"]
        for label, t in results.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(_run(Path(tmp), args.questions))
    header = ["path", "questions", "p50 ms", "p99 ms", "p50 over console ms"]
    print_table("MCP overhead per question, instant engine, sample SQLite database, cache off", header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
