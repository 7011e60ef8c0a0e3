"""The console channel: ``python -m bot ask`` and ``python -m bot chat``.

The same grammar and the same core as Slack and Teams; the console user is an admin by
default (``CHAT2SQL_ADMINS=console:*``). In the chat, after an answer: ``run`` previews it,
``explain`` explains its SQL, ``chart`` draws it into a PNG file (when the result has a
chart's shape) and prints the file's path; when the reply asks back with choices, typing a
choice's number sends it.

With the in-process model, its load starts in the background as soon as there is a database
to ask (``start_model``), so the first answer waits only for what is left of it; with no
database registered the console says how to get one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bot.cells import format_table
from bot.core.assistant import Assistant
from bot.core.types import Option, PreviewReply, Reply, Where
from chat2sql import errors, messages

PROMPT = "chat2sql> "
HINT = messages.CONSOLE_HINT
# Replies that mean "nothing to ask": with an empty registry, the console says how to get a database.
_NO_DATABASE_KINDS = frozenset({"NoDatabases", "UnknownDatabase", "NothingAllowedHere"})
_NO_DATABASE_TEXTS = frozenset({messages.user_message(errors.NoDatabases()), messages.no_databases_here()})

StartModel = Callable[[], None]


def console_where() -> Where:
    return Where(platform="console", workspace="local", channel="console", user_id=getpass.getuser())


def render_preview(preview: PreviewReply) -> str:
    if not preview.ok:
        return preview.text
    note = messages.console_preview_note(len(preview.rows), preview.elapsed_ms, more_rows=preview.truncated)
    return f"{format_table(preview.columns, preview.rows)}\n{note}"


def render_reply(reply: Reply) -> str:
    if reply.answer is None:
        return reply.text + render_options(reply.options)
    a = reply.answer
    note = messages.console_answer_note(
        a.database, a.latency_ms, cached=a.cache_hit, warnings=a.warnings, trace=a.trace_id
    )
    return f"{a.sql}\n-- {note}"


def render_options(options: Sequence[Option]) -> str:
    if not options:
        return ""
    lines = [f"  {i}. {o.label}" for i, o in enumerate(options, start=1)]
    return "\n" + "\n".join(lines) + "\n" + messages.CONSOLE_CHOOSE


def default_chart_dir() -> Path:
    return Path(tempfile.gettempdir()) / "chat2sql-charts"


async def write_chart(assistant: Assistant, audit_id: int, where: Where, directory: Path) -> str:
    """Draw an answer's chart into ``directory``; what to print (the file's path, or why not)."""
    result = await assistant.chart(audit_id, where)
    if not result.ok:
        return result.text
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"chart-{audit_id}.png"
    path.write_bytes(result.png)
    return f"{result.text}: {path}"


async def load_model_in_background(start_model: StartModel, *, note: TextIO | None = None) -> None:
    """Start the model's background load and say so in one line on ``note`` (stderr: ``--json``
    keeps stdout to itself)."""
    start_model()
    await asyncio.sleep(0)  # let the load reach its thread before the loop blocks (input, sync work)
    stream = note or sys.stderr
    stream.write(messages.CONSOLE_LOADING_MODEL + "\n")
    stream.flush()


async def start_model_when_useful(
    assistant: Assistant, start_model: StartModel | None, *, note: TextIO | None = None
) -> StartModel | None:
    """Start the model's background load once a database is registered; what is still to start.
    With no database nothing is asked of the model, and a load started for nothing would hold
    up the exit (its thread cannot be stopped)."""
    if start_model is None or not await assistant.database_names():
        return start_model
    await load_model_in_background(start_model, note=note)
    return None


async def for_console(assistant: Assistant, reply: Reply) -> Reply:
    """``reply``, or how to get a database when there is none yet (the platforms' text names
    their own `admin register`)."""
    nothing = reply.error_kind in _NO_DATABASE_KINDS or (reply.kind == "text" and reply.text in _NO_DATABASE_TEXTS)
    if reply.answer is not None or not nothing or await assistant.database_names():
        return reply
    return dataclasses.replace(reply, text=messages.CONSOLE_NO_DATABASES)


async def ask(
    assistant: Assistant,
    question: str,
    *,
    database: str | None,
    run: bool,
    as_json: bool,
    out: TextIO = sys.stdout,
    start_model: StartModel | None = None,
) -> int:
    where = console_where()
    await start_model_when_useful(assistant, start_model)
    reply = await for_console(assistant, await assistant.ask(question, where, database=database))
    preview = await assistant.preview(reply.answer.audit_id, where) if run and reply.answer else None
    if as_json:
        out.write(json.dumps(_json(reply, preview), ensure_ascii=False) + "\n")
    else:
        out.write(render_reply(reply) + "\n")
        if preview is not None:
            out.write(render_preview(preview) + "\n")
    return 0 if reply.kind == "answer" and (preview is None or preview.ok) else 1


def _json(reply: Reply, preview: PreviewReply | None) -> dict[str, Any]:
    if reply.answer is None:
        return {"error": reply.text, "error_kind": reply.error_kind}
    a = reply.answer
    body: dict[str, Any] = {
        "sql": a.sql,
        "database": a.database,
        "latency_ms": a.latency_ms,
        "cache_hit": a.cache_hit,
        "warnings": list(a.warnings),
        "trace_id": a.trace_id,
        "audit_id": a.audit_id,
    }
    if preview is not None:
        if preview.ok:
            body["preview"] = {
                "columns": list(preview.columns),
                "rows": [list(r) for r in preview.rows],
                "truncated": preview.truncated,
            }
        else:
            body["error"] = preview.text
    return body


async def chat(
    assistant: Assistant,
    *,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    chart_dir: Path | None = None,
    start_model: StartModel | None = None,
) -> int:
    """Read messages line by line; `run` previews the last answer, `explain` explains it, `chart`
    draws it, `good`/`bad [SQL]` give feedback, a number picks one of the last reply's choices.
    The model starts loading once a database is registered (at start, or after `admin register`)."""
    where = console_where()
    last: int | None = None
    options: tuple[Option, ...] = ()
    out.write(messages.CONSOLE_BANNER + "\n")
    if not await assistant.database_names():
        out.write(messages.CONSOLE_NO_DATABASES + "\n")
    while True:
        start_model = await start_model_when_useful(assistant, start_model)
        out.write(PROMPT)
        out.flush()
        line = stdin.readline()
        if not line or line.strip().lower() in ("quit", "exit"):
            out.write("\n")
            return 0
        text = line.strip()
        word = text.split(None, 1)[0].lower() if text else ""
        if text.isdigit() and 1 <= int(text) <= len(options):
            text = options[int(text) - 1].text
            out.write(f"> {text}\n")
            word = ""
        if word == "run" and last is not None:
            out.write(render_preview(await assistant.preview(last, where)) + "\n")
        elif word == "explain" and last is not None:
            out.write((await assistant.explain(last, where)).text + "\n")
        elif word == "chart" and last is not None:
            out.write(await write_chart(assistant, last, where, chart_dir or default_chart_dir()) + "\n")
        elif word in ("good", "bad") and last is not None:
            corrected = text.split(None, 1)[1] if " " in text else None
            reply = await assistant.feedback(last, where, "up" if word == "good" else "down", corrected)
            out.write(reply.text + "\n")
        else:
            reply = await for_console(assistant, await assistant.handle(text, where))
            options = reply.options
            out.write(render_reply(reply) + "\n")
            if reply.answer is not None:
                last = reply.answer.audit_id
                out.write(HINT + "\n")
