"""``python -m bot``: ask, chat, demo, serve, mcp, audit, report."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from chat2sql import log as chat2sql_log
from chat2sql import messages
from chat2sql.errors import Chat2SQLError
from chat2sql.messages import user_message
from chat2sql.settings import Settings

if TYPE_CHECKING:
    from bot.console import StartModel
    from bot.core.assistant import Assistant

DEMO_QUESTIONS = (
    ("sales_db", "How many customers do we have in each country?"),
    ("ecommerce_db", "Show me the top 5 products by revenue last month"),
    ("hr_db", "List all employees hired after 2020 who are in the engineering department"),
)


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = settings or Settings()
    chat2sql_log.configure(settings.log_level, settings.log_format)
    if argv[:1] == ["audit"]:
        from bot.audit import audit_main

        return audit_main(argv[1:], settings=settings)
    if argv[:1] == ["report"]:
        from bot.report import report_main

        return report_main(argv[1:], settings=settings)
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from bot.server import serve

        overrides = {k: v for k, v in (("server_host", args.host), ("server_port", args.port)) if v is not None}
        try:
            return serve(settings.model_copy(update=overrides) if overrides else settings)
        except (Chat2SQLError, ValueError) as err:  # configuration: one line, no traceback
            print(f"error: {user_message(err) if isinstance(err, Chat2SQLError) else err}", file=sys.stderr)
            return 1
    _quiet_progress_bars()
    try:
        return int(asyncio.run(args.handler(args, settings)))
    except Chat2SQLError as err:
        print(f"error: {user_message(err)}", file=sys.stderr)
        return 1


def _quiet_progress_bars() -> None:
    """The console's one "Loading the model…" line stands for the model libraries' progress
    bars, which would draw over the answers and the prompt (read when the libraries load)."""
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        os.environ.setdefault(name, "1")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ask", help="answer one question")
    p.add_argument("question")
    p.add_argument("--db", help="registered database")
    p.add_argument("--run", action="store_true", help="also run the read-only preview")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_ask)
    p = sub.add_parser("chat", help="interactive session with the chat grammar")
    p.set_defaults(handler=_chat)
    p = sub.add_parser("demo", help="build the sample databases and answer the seed's example questions")
    p.set_defaults(handler=_demo)
    p = sub.add_parser("serve", help="the chat server: Slack, Teams, /healthz, /metrics")
    p.add_argument("--host", help="default: CHAT2SQL_SERVER_HOST")
    p.add_argument("--port", type=int, help="default: CHAT2SQL_SERVER_PORT")
    p.set_defaults(handler=None)
    p = sub.add_parser("mcp", help="the MCP server over stdio, for the local user (assistants start it)")
    p.set_defaults(handler=_mcp)
    sub.add_parser("audit", help="list the audit log: [--since 7d|ISO] [--limit N] [--json]")
    sub.add_parser("report", help="reports: `report ab [--since 7d] [--json]` compares the A/B arms")
    return parser


def _console_assistant(settings: Settings) -> tuple[Assistant, StartModel | None]:
    """The assistant, and what starts its in-process model's background load (None: remote)."""
    from bot.wiring import background_load, build_assistant, inference_client

    client = inference_client(settings)
    return build_assistant(settings, client=client), background_load(client)


async def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console import ask

    assistant, start_model = _console_assistant(settings)
    try:
        return await ask(
            assistant, args.question, database=args.db, run=args.run, as_json=args.json, start_model=start_model
        )
    finally:
        await assistant.close()


async def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from bot.mcp_server import serve_stdio

    assistant, start_model = _console_assistant(settings)
    if start_model is not None:
        start_model()  # loads while the client lists the tools: the first ask waits less
    try:
        return await serve_stdio(assistant)
    finally:
        await assistant.close()


async def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console import chat

    assistant, start_model = _console_assistant(settings)
    try:
        return await chat(assistant, chart_dir=settings.data_dir / "charts", start_model=start_model)
    finally:
        await assistant.close()


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console import ask, load_model_in_background
    from samples import ensure_samples

    assistant, start_model = _console_assistant(settings)
    try:
        if start_model is not None:  # the samples are built while the model loads
            await load_model_in_background(start_model)
        built = ensure_samples(assistant.registry, settings.data_dir, today=date.today())
        print(messages.console_samples_ready(built))
        status = 0
        for database, question in DEMO_QUESTIONS:
            print(f"\n[db:{database}] {question}")
            status |= await ask(assistant, question, database=database, run=True, as_json=False)
        print("\n" + messages.CONSOLE_SAMPLES_NEXT)
        return status
    finally:
        await assistant.close()
