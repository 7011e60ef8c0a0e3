"""``python -m inference``: serve the worker, answer one question, print a prompt, manage keys."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from chat2sql import log as chat2sql_log
from chat2sql import messages
from chat2sql.errors import Chat2SQLError
from chat2sql.messages import user_message
from chat2sql.settings import Settings
from inference.keys import keys_main
from inference.prompts import FORMATS, build_prompt, get_format
from inference.protocol import DatabaseInfo, GenerateRequest
from schemas.registry import Registry
from schemas.render import render_schema

SCHEMA_BUDGET_TOKENS = 1500


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = settings or Settings()
    chat2sql_log.configure(settings.log_level, settings.log_format)
    if argv[:1] == ["keys"]:
        return keys_main(argv[1:], settings=settings)
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args, settings))
    except Chat2SQLError as err:
        print(f"error: {user_message(err)}", file=sys.stderr)
        return 1
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "input"
        print(
            f"error: {where}: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}",
            file=sys.stderr,
        )
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the worker HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(handler=_serve)

    p = sub.add_parser("generate", help="answer one question with the same engine")
    p.add_argument("question")
    p.add_argument("--db", help="registered database (its schema goes into the prompt)")
    p.add_argument("--model", help="model source (default: CHAT2SQL_MODEL)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=SRC", help="load and use an adapter")
    p.add_argument("--format", choices=sorted(FORMATS), help="prompt format")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_generate)

    p = sub.add_parser("prompt", help="print the exact prompt and nothing else")
    p.add_argument("question")
    p.add_argument("--format", required=True, choices=sorted(FORMATS))
    p.add_argument("--db", required=True)
    p.set_defaults(handler=_prompt)

    sub.add_parser("keys", help="API keys: create --tier T --name N | list [--json] | revoke NAME")
    return parser


def database_info(settings: Settings, name: str, question: str) -> DatabaseInfo:
    registry = Registry.open(settings)
    try:
        entry = registry.get(name)
    finally:
        registry.close()
    schema_text = render_schema(entry.schema, question=question, max_tokens=SCHEMA_BUDGET_TOKENS)
    return DatabaseInfo(name=entry.name, dialect=entry.schema.dialect, schema_text=schema_text)


def _prompt(args: argparse.Namespace, settings: Settings) -> int:
    db = database_info(settings, args.db, args.question)
    sys.stdout.write(
        build_prompt(
            get_format(args.format).name,
            question=args.question,
            database_name=db.name,
            dialect=db.dialect,
            schema_text=db.schema_text,
        )
    )
    return 0


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from inference.service import Worker
    from inference.wiring import engine_loader, worker_options

    adapters = dict(_pair(a) for a in args.adapter)
    db = database_info(settings, args.db, args.question) if args.db else DatabaseInfo(name="database")
    request = GenerateRequest(
        question=args.question,
        database=db,
        adapter=next(iter(adapters), None),
        prompt_format=args.format,
        max_new_tokens=args.max_new_tokens,
    )
    options = worker_options(settings)
    worker = Worker(load_engine=engine_loader(settings, model=args.model, adapters=adapters or None), options=options)

    async def run() -> str:
        worker.start()
        await worker.wait_ready(3600)
        try:
            response = await worker.generate(request)
        finally:
            await worker.stop()
        return response.model_dump_json() if args.json else response.sql

    print(asyncio.run(run()))
    return 0


def _pair(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise SystemExit("error: --adapter takes NAME=SOURCE")
    return name, source


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from inference.wiring import build_worker_app, serve_worker

    if settings.deploy_config is not None:  # the deployment's file is the deploy layer's to apply
        print(f"error: {messages.worker_deploy_config(str(settings.deploy_config))}", file=sys.stderr)
        return 2
    serve_worker(build_worker_app(settings), settings, host=args.host, port=args.port)
    return 0
