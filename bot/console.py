"""The console channel: ``python -m bot ask`` and ``python -m bot chat``.

The same grammar and the same core as Slack and Teams; the console user is an admin by
default (``CHAT2SQL_ADMINS=console:*``). In the chat, after an answer: ``run`` previews it,
``explain`` explains its SQL, ``chart`` draws it into a PNG file (when the result has a
chart's shape) and prints the file's path; when the reply asks back with choices, typing a
choice's number sends it.
"""

from __future__ import annotations

import getpass
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from bot.core import charts
from bot.core.assistant import Assistant, Option, PreviewReply, Reply
from bot.core.explain import explain
from bot.store import Where

PROMPT = "chat2sql> "
HINT = (
    "(type `run` for a preview, `explain` to explain the SQL, `chart` for a chart, "
    "`good` or `bad [corrected SQL]` for feedback)"
)


def console_where() -> Where:
    return Where(platform="console", workspace="local", channel="console", user_id=getpass.getuser())


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 40) -> str:
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any, max_width: int) -> str:
    text = "NULL" if value is None else str(value)
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def render_preview(preview: PreviewReply) -> str:
    if not preview.ok:
        return preview.text
    more = ", more rows not shown" if preview.truncated else ""
    return (
        f"{format_table(preview.columns, preview.rows)}\n({len(preview.rows)} rows{more}, {preview.elapsed_ms:.0f} ms)"
    )


def render_reply(reply: Reply) -> str:
    if reply.answer is None:
        return reply.text + render_options(reply.options)
    a = reply.answer
    notes = [f"database: {a.database}", f"{a.latency_ms:.0f} ms"]
    if a.cache_hit:
        notes.append("cached")
    notes += list(a.warnings)
    return f"{a.sql}\n-- {' · '.join(notes)} · trace {a.trace_id}"


def render_options(options: Sequence[Option]) -> str:
    if not options:
        return ""
    lines = [f"  {i}. {o.label}" for i, o in enumerate(options, start=1)]
    return "\n" + "\n".join(lines) + "\n(type a number to choose)"


def default_chart_dir() -> Path:
    return Path(tempfile.gettempdir()) / "chat2sql-charts"


async def write_chart(assistant: Assistant, audit_id: int, where: Where, directory: Path) -> str:
    """Draw an answer's chart into ``directory``; what to print (the file's path, or why not)."""
    result = await charts.chart(assistant, audit_id, where)
    if not result.ok:
        return result.text
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"chart-{audit_id}.png"
    path.write_bytes(result.png)
    return f"{result.text}: {path}"


async def ask(
    assistant: Assistant,
    question: str,
    *,
    database: str | None,
    run: bool,
    as_json: bool,
    out: TextIO = sys.stdout,
) -> int:
    where = console_where()
    reply = await assistant.ask(question, where, database=database)
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
    assistant: Assistant, *, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, chart_dir: Path | None = None
) -> int:
    """Read messages line by line; `run` previews the last answer, `explain` explains it, `chart`
    draws it, `good`/`bad [SQL]` give feedback, a number picks one of the last reply's choices."""
    where = console_where()
    last: int | None = None
    options: tuple[Option, ...] = ()
    out.write("chat2sql console — type `help`, or `quit` to leave.\n")
    while True:
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
            out.write((await explain(assistant, last, where)).text + "\n")
        elif word == "chart" and last is not None:
            out.write(await write_chart(assistant, last, where, chart_dir or default_chart_dir()) + "\n")
        elif word in ("good", "bad") and last is not None:
            corrected = text.split(None, 1)[1] if " " in text else None
            reply = assistant.feedback(last, where, "up" if word == "good" else "down", corrected)
            out.write(reply.text + "\n")
        else:
            reply = await assistant.handle(text, where)
            options = reply.options
            out.write(render_reply(reply) + "\n")
            if reply.answer is not None:
                last = reply.answer.audit_id
                out.write(HINT + "\n")
