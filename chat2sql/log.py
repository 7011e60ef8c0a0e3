"""Logging that carries the request id: JSON lines for servers and files, short lines for people.

``configure(level, log_format)`` picks the format: ``json`` and ``text`` as named, ``auto``
(the default) ``text`` when stderr is a terminal and ``json`` otherwise, so a container's,
a service manager's or a redirected log stays machine-readable while ``python -m bot chat``
shows ``14:02:11 INFO  inference.engine: model loaded (device=cpu, load_s=1.2)``.
Both formats carry the same facts: message, ``extra={"fields": {...}}``, request id, error type.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Literal, TextIO

from chat2sql.redact import RedactingFilter

LogFormat = Literal["auto", "json", "text"]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Loggers that log at the configured level; any other (a library's) logs warnings and above only.
OWN_LOGGERS = ("bot", "chat2sql", "inference", "schemas", "deploy", "bench", "uvicorn")
LIBRARY_LEVEL = logging.WARNING


def _facts(record: logging.LogRecord) -> dict[str, object]:
    """What a record says besides its message: request id, its ``fields``, the error's type."""
    facts: dict[str, object] = {}
    rid = request_id.get()
    if rid:
        facts["request_id"] = rid
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        facts.update(extra)
    if record.exc_info and record.exc_info[0] is not None:
        facts["exc_type"] = record.exc_info[0].__name__
    return facts


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(_facts(record))
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    """One short line per record, local time.

    >>> record = logging.makeLogRecord(
    ...     {"name": "inference.engine", "levelname": "INFO", "msg": "model loaded", "created": 0.0,
    ...      "fields": {"device": "cpu", "load_s": 1.2}})
    >>> TextFormatter().format(record)[8:]
    ' INFO  inference.engine: model loaded (device=cpu, load_s=1.2)'
    """

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        facts = ", ".join(f"{k}={_fact(v)}" for k, v in _facts(record).items())
        line = f"{clock} {record.levelname:<5} {record.name}: {record.getMessage()}"
        return f"{line} ({facts})" if facts else line


def _fact(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def resolve_format(log_format: LogFormat, stream: TextIO) -> Literal["json", "text"]:
    """``auto``: text on a terminal, JSON lines anywhere else (a pipe, a file, a container log)."""
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if callable(isatty) and isatty() else "json"


def configure(level: str = "INFO", log_format: LogFormat = "auto", *, stream: TextIO | None = None) -> None:
    """Log to stderr (stdout stays free for command output): our loggers at ``level``,
    libraries' at warnings and above, so that their chatter does not bury the answers."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter() if resolve_format(log_format, out) == "text" else JsonFormatter())
    handler.addFilter(RedactingFilter())
    wanted = logging.getLevelName(level.upper())
    if not isinstance(wanted, int):
        raise ValueError(f"unknown log level: {level!r}")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(wanted, LIBRARY_LEVEL))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(wanted)
    # sqlglot warns on every statement it falls back to parsing as a Command.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
