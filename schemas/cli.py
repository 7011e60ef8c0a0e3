"""``python -m schemas``: manage the registry, check SQL with the guard, run previews.

Errors are one clear line on stderr and a non-zero exit, with the registry unchanged.
With ``--json``, stdout carries nothing but JSON.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from chat2sql import log as chat2sql_log
from chat2sql import messages
from chat2sql.errors import Chat2SQLError
from chat2sql.messages import user_message
from chat2sql.settings import Settings
from schemas import guard
from schemas.glossary import GlossaryUnchanged
from schemas.preview import ReadOnlyRunner, run_checked
from schemas.registry import RegisteredDatabase, Registry, validate_function
from schemas.render import render_schema

logger = logging.getLogger("schemas.cli")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = settings or Settings()
    chat2sql_log.configure(settings.log_level, settings.log_format)
    try:
        registry = Registry.open(settings)
    except Chat2SQLError as err:
        return _fail(user_message(err))
    try:
        return int(args.handler(args, registry, settings))
    except Chat2SQLError as err:
        return _fail(user_message(err))
    except (OSError, UnicodeDecodeError) as err:
        return _fail(
            f"could not read input: {err.strerror or type(err).__name__}"
            if isinstance(err, OSError)
            else "input is not valid UTF-8"
        )
    except Exception:
        logger.exception("unexpected error")
        return _fail(user_message(Exception()))
    finally:
        registry.close()


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_FAIL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m schemas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("add", help="connect to a database, introspect it and register it")
    p.add_argument("name")
    p.add_argument("url", help="SQLAlchemy URL, e.g. postgresql://user:pw@host/db")
    p.add_argument("--description", default="")
    p.add_argument(
        "--allow-privileged",
        action="store_true",
        help="register even if the account is a superuser or can read/write server files",
    )
    p.set_defaults(handler=_add)

    p = sub.add_parser("list", help="list registered databases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)

    p = sub.add_parser("show", help="the schema as the model sees it")
    p.add_argument("name")
    p.add_argument("--question", help="rank tables for this question (with --max-tokens)")
    p.add_argument("--max-tokens", type=int, help="token budget for the schema text")
    p.add_argument("--json", action="store_true", help="the entry, its account findings and schema text as JSON")
    p.set_defaults(handler=_show)

    p = sub.add_parser("functions", help="extra SQL functions the guard may accept on a database")
    p.add_argument("name")
    p.add_argument("--allow", nargs="+", default=[], metavar="FUNC", help="e.g. date_trunc or schema.func")
    p.add_argument("--disallow", nargs="+", default=[], metavar="FUNC")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_functions)

    p = sub.add_parser("refresh", help="re-introspect a registered database")
    p.add_argument("name")
    p.set_defaults(handler=_refresh)

    p = sub.add_parser("remove", help="unregister a database")
    p.add_argument("name")
    p.set_defaults(handler=_remove)

    _glossary_parsers(sub)

    for command, handler, text in (
        ("check", _check, "check SQL with the guard"),
        ("run", _run, "run guard-accepted SQL as a read-only preview"),
    ):
        p = sub.add_parser(command, help=text)
        p.add_argument("--db", required=True, help="registered database name")
        p.add_argument("--json", action="store_true")
        p.add_argument("--max-rows", type=_positive_int, default=None)
        if command == "run":
            p.add_argument("--timeout", type=float, default=None, help="seconds (default 5)")
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("sql", nargs="?", help="one SQL statement")
        source.add_argument("--file", help="one statement per line; '-' for stdin")
        p.set_defaults(handler=handler)
    return parser


def _glossary_parsers(sub: Any) -> None:
    p = sub.add_parser("glossary", help="a database's glossary: terms, metrics, column notes, hidden columns")
    p.add_argument("name")
    p.add_argument("--history", action="store_true", help="every version, not only the active entries")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_glossary)

    p = sub.add_parser("define", help="define a term (in words) or a metric (a SQL expression)")
    p.add_argument("name")
    p.add_argument("term", help="the term's or metric's name, e.g. 'active customer'")
    p.add_argument("definition")
    p.add_argument("--kind", choices=("term", "metric"), help="default: a metric if it reads as SQL over real columns")
    p.set_defaults(handler=_define)

    p = sub.add_parser("describe", help="describe a column for the model")
    p.add_argument("name")
    p.add_argument("column", help="TABLE.COLUMN")
    p.add_argument("text")
    p.set_defaults(handler=_describe)

    for command, text in (("hide", "hide a column from the model"), ("unhide", "show a hidden column again")):
        p = sub.add_parser(command, help=text)
        p.add_argument("name")
        p.add_argument("column", help="TABLE.COLUMN")
        p.set_defaults(handler=_hide if command == "hide" else _unhide)

    p = sub.add_parser("undefine", help="remove a term, metric or column description (its history is kept)")
    p.add_argument("name")
    p.add_argument("term")
    p.set_defaults(handler=_undefine)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    entry = registry.add(
        args.name,
        args.url,
        description=args.description,
        registered_by=f"cli:{getpass.getuser()}",
        allow_privileged=args.allow_privileged,
    )
    print(f"registered {entry.name} ({entry.dialect}, {len(entry.schema.tables)} tables) at {entry.url_masked}")
    if entry.account is not None and entry.dialect != "sqlite":
        warning = "warning: privileged account (--allow-privileged): " if entry.account.privileged else ""
        print(f"{warning}account {entry.account.summary()}")
    return EXIT_OK


def _list(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    entries = registry.list()
    if args.json:
        print(json.dumps([e.to_json() for e in entries]))
        return EXIT_OK
    if not entries:
        print("no databases registered (python -m schemas add NAME URL)")
    for e in entries:
        print(f"{e.name}\t{e.dialect}\t{len(e.schema.tables)} tables\t{e.url_masked}\t{e.description}")
    return EXIT_OK


def _show(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    entry = registry.get(args.name)
    schema_text = render_schema(entry.schema, question=args.question, max_tokens=args.max_tokens)
    if args.json:
        print(json.dumps({**entry.to_json(), "schema": schema_text}, ensure_ascii=False))
        return EXIT_OK
    print(schema_text)
    print()
    for line in _account_lines(entry):
        print(f"-- {line}")
    functions = ", ".join(entry.allowed_functions) or "none"
    print(f"-- allowed extra functions: {functions}")
    return EXIT_OK


def _account_lines(entry: RegisteredDatabase) -> list[str]:
    if entry.account is None:
        return ["account: not checked yet (python -m schemas refresh NAME checks it)"]
    if entry.dialect == "sqlite":
        return ["account: none (an SQLite file, opened read-only)"]
    account = entry.account
    lines = [
        f"account: {account.user or '?'}" + (" (registered with --allow-privileged)" if account.privileged else "")
    ]
    lines += [f"  {finding}" for finding in account.findings()] or [
        "  read-only: no superuser, no server files, no writes"
    ]
    return lines


def _functions(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    entry = registry.get(args.name)
    if args.allow or args.disallow:
        removed = {validate_function(f) for f in args.disallow}
        added = {validate_function(f) for f in args.allow}
        entry = registry.set_allowed_functions(args.name, (set(entry.allowed_functions) | added) - removed)
    if args.json:
        print(json.dumps({"name": entry.name, "allowed_functions": list(entry.allowed_functions)}))
    else:
        print(f"{entry.name}: allowed extra functions: {', '.join(entry.allowed_functions) or 'none'}")
    return EXIT_OK


def _refresh(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    entry, changed = registry.refresh(args.name)
    state = "changed" if changed else "unchanged"
    print(f"refreshed {entry.name}: {len(entry.schema.tables)} tables, schema {state}")
    return EXIT_OK


def _remove(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    registry.remove(args.name)
    print(f"removed {args.name}")
    return EXIT_OK


def _glossary(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    name = registry.get(args.name).name
    entries = registry.glossary.history(name) if args.history else registry.glossary.entries(name)
    if args.json:
        print(json.dumps([e.to_json() for e in entries], ensure_ascii=False))
        return EXIT_OK
    if not entries:
        print(f"{name}: no glossary entries (python -m schemas define {name} TERM DEFINITION)")
    for e in entries:
        state = "" if e.active else "\tinactive"
        print(f"{e.kind}\t{e.name}\t{e.definition}\tv{e.version}\t{e.created_by}{state}")
    return EXIT_OK


def _store_entry(registry: Registry, name: str, kind: str | None, key: str, definition: str) -> int:
    try:
        entry = registry.glossary.define(name, kind, key, definition, by=f"cli:{getpass.getuser()}")
    except GlossaryUnchanged as same:
        print(same.message)
        return EXIT_OK
    print(messages.glossary_defined(entry.database, entry.kind, entry.name, entry.version))
    return EXIT_OK


def _define(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    return _store_entry(registry, args.name, args.kind, args.term, args.definition)


def _describe(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    return _store_entry(registry, args.name, "column", args.column, args.text)


def _hide(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    return _store_entry(registry, args.name, "hidden", args.column, "")


def _unhide(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    registry.glossary.remove(args.name, "hidden", args.column, by=f"cli:{getpass.getuser()}")
    print(messages.glossary_removed(args.name, args.column, hidden=True))
    return EXIT_OK


def _undefine(args: argparse.Namespace, registry: Registry, _settings: Settings) -> int:
    registry.glossary.remove(args.name, None, args.term, by=f"cli:{getpass.getuser()}")
    print(messages.glossary_removed(args.name, args.term, hidden=False))
    return EXIT_OK


def _check(args: argparse.Namespace, registry: Registry, settings: Settings) -> int:
    entry = registry.get(args.db)
    max_rows = args.max_rows or settings.preview_max_rows
    results = (
        guard.check(sql, entry.schema, max_rows=max_rows, allowed_functions=entry.allowed_functions)
        for sql in _statements(args)
    )
    last_ok = True
    for result in results:
        last_ok = result.ok
        if args.json:
            _emit_json(result.to_json())
        elif result.ok:
            print(result.normalized)
        else:
            print(f"rejected by {result.rule}: {result.reason}")
    if args.file is not None:
        return EXIT_OK
    return EXIT_OK if last_ok else EXIT_FAIL


def _run(args: argparse.Namespace, registry: Registry, settings: Settings) -> int:
    entry = registry.get(args.db)
    url = registry.connection_url(args.db)
    runner = ReadOnlyRunner(url=url, allowed_functions=entry.allowed_functions)
    max_rows = args.max_rows or settings.preview_max_rows
    timeout_s = args.timeout or settings.preview_timeout_s
    last_ok = True
    try:
        for sql in _statements(args):
            out = run_checked(
                sql,
                entry.schema,
                runner,
                max_rows=max_rows,
                timeout_s=timeout_s,
                allowed_functions=entry.allowed_functions,
            )
            last_ok = bool(out["ok"])
            if args.json:
                _emit_json(out)
            else:
                _print_result(out, sys.stdout)
    finally:
        runner.close()
    if args.file is not None:
        return EXIT_OK
    return EXIT_OK if last_ok else EXIT_FAIL


def _print_result(out: dict[str, Any], stream: TextIO) -> None:
    if not out["ok"]:
        print(f"rejected by {out['rule']}: {out['reason']}", file=stream)
        return
    columns = [str(c) for c in out["columns"]]
    rows = [["NULL" if v is None else str(v) for v in row] for row in out["rows"]]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=stream)
    print("-+-".join("-" * w for w in widths), file=stream)
    for row in rows:
        print(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=stream)
    more = ", truncated" if out["truncated"] else ""
    print(f"({len(rows)} rows{more}, {out['elapsed_ms']:.1f} ms)", file=stream)


def _statements(args: argparse.Namespace) -> Iterator[str]:
    if args.file is None:
        yield args.sql
        return
    if args.file == "-":
        lines = sys.stdin.read().splitlines()
    else:
        with open(args.file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    yield from lines


def _emit_json(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False, separators=(",", ":")), flush=True)
