"""Adaptive Cards (schema 1.5, what Teams renders) for answers, previews, schemas,
explanations, charts and a clarifying question's choices.

Cards are plain dicts: the SDK carries them as an attachment's content. Card buttons are
``Action.Submit``; Teams posts their ``data`` (plus the card's inputs) back as a message
whose ``value`` is that dict, tagged ``{"chat2sql": ACTION, "audit_id": N}``.
A preview table stops adding rows when the card nears ``MAX_CARD_BYTES``, far under Teams'
~100 KB message limit, and says so. A chart travels inside its card as a ``data:`` URI (a
small palette PNG, at most ``charts.TEAMS_MAX_PNG_BYTES``): nothing to host, sign or expire,
and it works on every replica; the card stays under ``MAX_CARD_BYTES`` like any other.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from bot.cells import cell_text
from bot.core.assistant import Answer, Option, PreviewReply
from bot.core.charts import chartable
from bot.core.text import cut
from chat2sql import messages

CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_CARD_BYTES = 40_000  # Teams refuses messages over ~100 KB; keep far under its 80 KB advice
MAX_COLUMNS = 12  # a wider Table is unreadable in a chat pane
MAX_CELL_CHARS = 200
MAX_SCHEMA_CHARS = 20_000
MAX_CORRECTION_CHARS = 10_000
ACTIONS = ("preview", "up", "down", "schema", "explain", "chart")  # each with an audit_id
OPTION = "option"  # a clarifying question's choice: its ``text`` is the user's next message
MAX_OPTIONS = 10
PRIMARY_OPTIONS = 5  # more go to the card's "…" menu (Action.mode "secondary", 1.5)
MAX_TITLE_CHARS = 60

Card = dict[str, Any]


def answer_card(answer: Answer) -> Card:
    facts = [
        {"title": messages.TEAMS_FACT_DATABASE, "value": answer.database},
        {
            "title": messages.TEAMS_FACT_LATENCY,
            "value": messages.teams_latency(answer.latency_ms, cached=answer.cache_hit),
        },
        {"title": messages.TEAMS_FACT_TRACE, "value": answer.trace_id},
    ]
    body: list[Card] = [
        _text(messages.teams_answer_title(answer.database), weight="Bolder"),
        _code(answer.sql),
        {"type": "FactSet", "facts": facts},
    ]
    body += [_text(f"⚠️ {w}", color="Warning") for w in answer.warnings]
    ref = {"audit_id": answer.audit_id}
    correction = {
        "type": "AdaptiveCard",
        "body": [
            {
                "type": "Input.Text",
                "id": "corrected_sql",
                "isMultiline": True,
                "maxLength": MAX_CORRECTION_CHARS,
                "placeholder": messages.TEAMS_CORRECTION_PLACEHOLDER,
            }
        ],
        "actions": [_submit(messages.TEAMS_SEND_THUMBS_DOWN, {"chat2sql": "down", **ref})],
    }
    actions = [
        _submit(messages.TEAMS_RUN_PREVIEW, {"chat2sql": "preview", **ref}),
        _submit(messages.EXPLAIN, {"chat2sql": "explain", **ref}),
        _submit(messages.TEAMS_THUMBS_UP, {"chat2sql": "up", **ref}),
        {"type": "Action.ShowCard", "title": messages.TEAMS_THUMBS_DOWN, "card": correction},
        _submit(messages.TEAMS_SHOW_SCHEMA, {"chat2sql": "schema", "database": answer.database, **ref}),
    ]
    return _card(body, actions)


def preview_card(preview: PreviewReply, *, audit_id: int | None = None) -> Card:
    """The preview as a Table, as many rows as fit; ``preview.ok`` must be true. With
    ``audit_id``, a Chart button when the result has a chart's shape."""
    columns = list(preview.columns[:MAX_COLUMNS])
    if not preview.rows:
        return _card([_text(messages.TEAMS_NO_ROWS)])
    header = _row([_cell(c, c) for c in columns], bold=True)
    rows: list[Card] = [header]
    used = _size(_card([_table(columns, rows), _text(" " * 200)]))
    cut = len(preview.columns) > MAX_COLUMNS
    for values in preview.rows:
        row = _row([_cell(v, c) for v, c in zip(values, columns, strict=False)])
        grown = len(json.dumps(row, ensure_ascii=False).encode()) + 1
        if used + grown > MAX_CARD_BYTES:
            cut = True
            break
        rows.append(row)
        used += grown
    note = messages.teams_preview_note(len(rows) - 1, preview.elapsed_ms, more_rows=preview.truncated, cut=cut)
    actions = []
    if audit_id is not None and chartable(preview):
        actions.append(_submit(messages.CHART, {"chat2sql": "chart", "audit_id": audit_id}))
    return _card([_table(columns, rows), _text(note, isSubtle=True, size="Small")], actions)


def explanation_card(text: str) -> Card:
    """An explanation: its title, then a line per step (nesting kept with em spaces,
    which Teams does not trim)."""
    title, _, body = text.partition("\n")
    lines = [_text(title, weight="Bolder")]
    for line in body.splitlines():
        stripped = line.lstrip(" ")
        lines.append(_text("\u2003" * ((len(line) - len(stripped)) // 2) + stripped, spacing="None"))
    return _card(lines)


def chart_card(caption: str, png: bytes) -> Card:
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    image = {"type": "Image", "url": url, "altText": caption, "size": "Stretch"}
    return _card([_text(caption, weight="Bolder"), image])


def options_card(text: str, options: Sequence[Option]) -> Card:
    """A clarifying question with its choices as buttons; pressing one sends its ``text``."""
    shown = list(options[:MAX_OPTIONS])
    actions = [
        {
            **_submit(_title(o.label), {"chat2sql": OPTION, "text": o.text}),
            **({"mode": "secondary"} if i >= PRIMARY_OPTIONS else {}),
        }
        for i, o in enumerate(shown)
    ]
    body = [_text(text)]
    if len(options) > len(shown):
        body.append(_text(messages.choices_cut(len(options) - len(shown)), isSubtle=True, size="Small"))
    return _card(body, actions)


def schema_card(database: str, schema_text: str) -> Card:
    cut = len(schema_text) > MAX_SCHEMA_CHARS
    text = schema_text[:MAX_SCHEMA_CHARS] + ("\n…" if cut else "")
    return _card([_text(messages.teams_schema_title(database), weight="Bolder"), _code(text)])


def card_bytes(card: Card) -> int:
    return _size(card)


# --- elements -----------------------------------------------------------------------------


def _card(body: Sequence[Card], actions: Sequence[Card] = ()) -> Card:
    card: Card = {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION, "body": list(body)}
    if actions:
        card["actions"] = list(actions)
    return card


def _title(label: str) -> str:
    return cut(label, MAX_TITLE_CHARS)


def _text(text: str, **style: Any) -> Card:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _code(text: str) -> Card:
    """Monospace text runs: unlike a TextBlock, no markdown mangles ``*`` or ``_`` in SQL."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text, "fontType": "Monospace"}]}


def _submit(title: str, data: dict[str, Any]) -> Card:
    return {"type": "Action.Submit", "title": title, "data": data}


def _table(columns: Sequence[str], rows: list[Card]) -> Card:
    return {
        "type": "Table",
        "firstRowAsHeaders": True,
        "showGridLines": True,
        "columns": [{"width": 1} for _ in columns],
        "rows": rows,
    }


def _row(texts: Sequence[str], *, bold: bool = False) -> Card:
    style = {"weight": "Bolder"} if bold else {}
    return {
        "type": "TableRow",
        "cells": [{"type": "TableCell", "items": [_text(t, **style)]} for t in texts],
    }


def _cell(value: Any, column: str) -> str:
    text = cell_text(value, column=column)
    return cut(text, MAX_CELL_CHARS)


def _size(card: Card) -> int:
    return len(json.dumps(card, ensure_ascii=False).encode())
