"""``python -m bot audit [--since] [--limit N] [--json]``: what the bot was asked and answered,
from the audit rows of ``bot.store``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from bot.core.types import AuditEntry
from bot.store import DEFAULT_AUDIT_LIMIT, BotStore, BotStoreError, to_utc, utcnow
from chat2sql import messages
from chat2sql.messages import registry_unusable
from chat2sql.redact import error_line
from chat2sql.settings import Settings

QUESTION_PREVIEW_CHARS = 80
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class InvalidSince(BotStoreError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    @property
    def message(self) -> str:
        return messages.invalid_since(self.text)


_AGE = re.compile(r"(?P<amount>\d{1,6})(?P<unit>[dh])")
_AGE_UNITS = {"d": dt.timedelta(days=1), "h": dt.timedelta(hours=1)}


def parse_since(text: str, *, now: dt.datetime) -> dt.datetime:
    """An age such as ``7d``/``12h`` before ``now``, or an ISO date/time (naive = UTC).

    >>> now = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    >>> parse_since("7d", now=now).isoformat()
    '2026-03-03T12:00:00+00:00'
    >>> parse_since("2026-03-01", now=now).isoformat()
    '2026-03-01T00:00:00+00:00'
    """
    cleaned = text.strip()
    age = _AGE.fullmatch(cleaned.lower())
    if age:
        return now - int(age["amount"]) * _AGE_UNITS[age["unit"]]
    try:
        return to_utc(dt.datetime.fromisoformat(cleaned))
    except ValueError:
        raise InvalidSince(text) from None


def audit_main(argv: Sequence[str], *, settings: Settings) -> int:
    """``python -m bot audit``; ``argv`` is what follows ``audit``.

    With ``--json`` stdout carries one JSON array and nothing else. Errors are one line on
    stderr: exit 1, or 2 for usage errors (argparse prints the usage).
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage (or --help)
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        since = parse_since(args.since, now=utcnow()) if args.since is not None else None
    except InvalidSince as err:
        return _fail(err.message)
    try:
        store = BotStore.open(settings)
    except SQLAlchemyError as exc:
        return _fail(registry_unusable(error_line(exc)))
    try:
        entries = store.audit(since=since, limit=args.limit)
    except SQLAlchemyError as exc:
        return _fail(registry_unusable(error_line(exc)))
    finally:
        store.close()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], ensure_ascii=False))
        return EXIT_OK
    if not entries:
        print("no audit entries" + (" since " + since.isoformat() if since else ""))
    for e in entries:
        print(_audit_line(e))
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot audit", description="Show what the bot was asked and what it answered."
    )
    parser.add_argument("--since", help="an ISO date/time (UTC) or an age such as 7d or 12h")
    parser.add_argument(
        "--limit", type=_positive_int, default=DEFAULT_AUDIT_LIMIT, help="at most this many, newest first"
    )
    parser.add_argument("--json", action="store_true", help="one JSON array on stdout")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _audit_line(e: AuditEntry) -> str:
    outcome = e.error_kind or e.guard_verdict or "-"
    rows = "-" if e.preview_rows is None else f"{e.preview_rows} rows"
    latency = "-" if e.latency_ms is None else f"{e.latency_ms:.0f} ms"
    question = " ".join(e.question.split())
    if len(question) > QUESTION_PREVIEW_CHARS:
        question = question[: QUESTION_PREVIEW_CHARS - 1] + "…"
    return "\t".join(
        (
            f"{e.created_at:%Y-%m-%d %H:%M:%S}",
            f"#{e.id}",
            f"{e.platform}:{e.workspace}/{e.channel}",
            e.user_id,
            e.database or "-",
            outcome,
            rows,
            latency,
            "cached" if e.cache_hit else "-",
            question,
        )
    )


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_FAIL
