"""Block Kit for answers, previews, schemas and the correction modal.

Slack's limits are enforced here, never left to fail at the API: at most 50 blocks per
message and 3,000 characters per section; what does not fit is cut with a note (long
previews also go out as a CSV file, see ``bot.slack.app``). ``action_id`` values are the
contract with the interaction handlers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from bot.cells import format_table
from bot.core.assistant import Answer, Option, PreviewReply
from bot.core.charts import chartable
from bot.core.text import cut
from chat2sql import messages

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_TEXT_CHARS = 3000  # the notification fallback ``text`` (Slack allows more; keep it short)
MAX_INPUT_CHARS = 3000  # plain_text_input's own maximum
MAX_BUTTON_TEXT = 75  # a button's (and an overflow option's) label
MAX_BUTTON_VALUE = 2000
MAX_OVERFLOW_VALUE = 150
MAX_OVERFLOW_OPTIONS = 5
MAX_ACTION_ELEMENTS = 25
OPTION_BUTTONS = 5  # choices shown as buttons; the rest go in an overflow menu

PREVIEW = "c2s_preview"
UP = "c2s_up"
DOWN = "c2s_down"
SCHEMA = "c2s_schema"
EXPLAIN = "c2s_explain"
CHART = "c2s_chart"
OPTION = "c2s_option"  # a clarifying question's choice: the button's value is the message it sends
OPTION_MENU = "c2s_option_more"
CORRECTION = "c2s_correction"  # the modal's callback_id
CORRECTION_BLOCK, CORRECTION_INPUT = "corrected_sql", "sql"

Block = dict[str, Any]


def mrkdwn(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION_CHARS)}}


def context(*parts: str) -> Block:
    # A context block takes at most 10 elements of up to 3,000 characters.
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(p, MAX_SECTION_CHARS)} for p in parts[:10]]}


def code_sections(code: str, *, max_sections: int) -> list[Block]:
    """``code`` in fenced sections of at most 3,000 characters, split on line ends; cut
    with a note past ``max_sections``."""
    room = MAX_SECTION_CHARS - len("```\n\n```")
    chunks: list[str] = []
    current = ""
    for line in code.splitlines() or [""]:
        while len(line) > room:  # one very long line: hard-wrap it
            chunks, current = _flush(chunks, current), ""
            chunks.append(line[:room])
            line = line[room:]
        if len(current) + len(line) + 1 > room:
            chunks, current = _flush(chunks, current), ""
        current = f"{current}\n{line}" if current else line
    chunks = _flush(chunks, current)
    blocks = [mrkdwn(f"```\n{chunk}\n```") for chunk in chunks[:max_sections]]
    if len(chunks) > max_sections:
        blocks.append(context(messages.SLACK_CUT))
    return blocks


def _flush(chunks: list[str], current: str) -> list[str]:
    return [*chunks, current] if current else chunks


def fit(blocks: list[Block]) -> list[Block]:
    """At most 50 blocks, the last one saying that the rest was cut."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], context(messages.SLACK_CUT)]


def answer_blocks(answer: Answer, *, asked_by: str | None = None, question: str | None = None) -> list[Block]:
    blocks: list[Block] = []
    if asked_by and question:
        blocks.append(context(messages.slack_asked(asked_by, _escape(question))))
    actions: Block = {
        "type": "actions",
        "block_id": f"answer:{answer.audit_id}",
        "elements": [
            _button(messages.SLACK_RUN_PREVIEW, PREVIEW, str(answer.audit_id), style="primary"),
            _button(messages.EXPLAIN, EXPLAIN, str(answer.audit_id)),
            _button("👍", UP, str(answer.audit_id)),
            _button("👎", DOWN, str(answer.audit_id)),
            _button(messages.SLACK_SHOW_SCHEMA, SCHEMA, answer.database),
        ],
    }
    tail = [context(messages.slack_answer_note(answer.database, answer.latency_ms, cached=answer.cache_hit))]
    if answer.warnings:
        tail.append(context(*(f"⚠️ {_escape(w)}" for w in answer.warnings)))
    room = MAX_BLOCKS - len(blocks) - len(tail) - 2  # actions, and a possible cut note
    return fit([*blocks, *code_sections(answer.sql, max_sections=room), *tail, actions])


def answer_text(answer: Answer) -> str:
    """The notification/fallback text of an answer message."""
    return cut(messages.slack_answer_text(answer.database, answer.sql), MAX_TEXT_CHARS)


def text_blocks(text: str) -> list[Block]:
    """Plain reply text (help, admin output, errors) in sections of at most 3,000 characters."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()] or [text]
    blocks: list[Block] = []
    for p in paragraphs:
        if p.lstrip().startswith("```") or len(p) <= MAX_SECTION_CHARS:
            blocks.append(mrkdwn(p))
        else:
            blocks.extend(mrkdwn(p[i : i + MAX_SECTION_CHARS]) for i in range(0, len(p), MAX_SECTION_CHARS))
    return fit(blocks)


def preview_blocks(
    preview: PreviewReply, *, max_rows: int = 40, audit_id: int | None = None
) -> tuple[list[Block], bool]:
    """The preview as a monospace table; True when the table in the message is incomplete
    (then the caller attaches the rows as CSV). With ``audit_id``, a Chart button when the
    result has a chart's shape."""
    if not preview.ok:
        return [mrkdwn(f"⚠️ {_escape(preview.text)}")], False
    shown = list(preview.rows[:max_rows])
    table = format_table(preview.columns, shown)
    # Drop rows until the table fits one section.
    while len(table) > MAX_SECTION_CHARS - 8 and shown:
        shown.pop()
        table = format_table(preview.columns, shown)
    if len(table) > MAX_SECTION_CHARS - 8:  # too many columns for even one row
        table, shown = cut(table, MAX_SECTION_CHARS - 8), []
    cut_here = len(shown) < len(preview.rows)
    note = messages.slack_preview_note(
        len(preview.rows), preview.elapsed_ms, shown=len(shown), more_rows=preview.truncated
    )
    content = [mrkdwn(f"```\n{table}\n```"), context(note)]
    if audit_id is not None and chartable(preview):
        chart = _button(messages.CHART, CHART, str(audit_id))
        content.append({"type": "actions", "block_id": f"preview:{audit_id}", "elements": [chart]})
    return content, cut_here


def option_blocks(options: Sequence[Option]) -> list[Block]:
    """A clarifying question's choices: up to five buttons, the rest in an overflow menu.

    A button's value is the message it sends back. An overflow option holds at most 150
    characters, so when a further choice is longer (or there are more than fit), every
    choice is a button instead (up to Slack's 25 per actions block; beyond that a note)."""
    if not options:
        return []
    shown = list(options[:MAX_ACTION_ELEMENTS])
    rest = shown[OPTION_BUTTONS:]
    overflow = 0 < len(rest) <= MAX_OVERFLOW_OPTIONS and all(len(o.text) <= MAX_OVERFLOW_VALUE for o in rest)
    buttons = shown[:OPTION_BUTTONS] if overflow else shown
    elements: list[Block] = [_button(cut(o.label, MAX_BUTTON_TEXT), OPTION, o.text[:MAX_BUTTON_VALUE]) for o in buttons]
    if overflow:
        elements.append(
            {
                "type": "overflow",
                "action_id": OPTION_MENU,
                "options": [
                    {"text": {"type": "plain_text", "text": cut(o.label, MAX_BUTTON_TEXT)}, "value": o.text}
                    for o in rest
                ],
            }
        )
    out: list[Block] = [{"type": "actions", "block_id": "options", "elements": elements}]
    if len(options) > len(shown):
        out.append(context(messages.choices_cut(len(options) - len(shown))))
    return out


def reply_blocks(text: str, options: Sequence[Option] = ()) -> list[Block]:
    """A text reply, with its choices as buttons when it asks back."""
    choices = option_blocks(options)
    if not choices:
        return text_blocks(text)
    return [*text_blocks(text)[: MAX_BLOCKS - len(choices)], *choices]


def explanation_blocks(text: str) -> list[Block]:
    """An explanation: its title line bold, the rest as written (nesting kept by indentation)."""
    title, _, body = text.partition("\n")
    lines = [f"*{_escape(title)}*", *(_indented(_escape(line)) for line in body.splitlines())]
    return text_blocks("\n".join(lines))


def _indented(line: str) -> str:
    """Leading spaces as em spaces, which Slack does not collapse."""
    text = line.lstrip(" ")
    return "\u2003" * ((len(line) - len(text)) // 2) + text


def preview_csv(preview: PreviewReply) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(preview.columns)
    writer.writerows(["" if v is None else v for v in row] for row in preview.rows)
    return out.getvalue()


def schema_blocks(database: str, text: str) -> list[Block]:
    head = [mrkdwn(messages.slack_schema_title(database))]
    return fit([*head, *code_sections(text, max_sections=MAX_BLOCKS - 2)])


def correction_modal(audit_id: int, *, channel: str, thread_ts: str | None) -> dict[str, Any]:
    metadata = json.dumps({"audit_id": audit_id, "channel": channel, "thread_ts": thread_ts})
    return {
        "type": "modal",
        "callback_id": CORRECTION,
        "private_metadata": metadata,
        "notify_on_close": True,  # a cancelled modal still records the 👎
        "title": {"type": "plain_text", "text": messages.SLACK_CORRECTION_TITLE},
        "submit": {"type": "plain_text", "text": messages.SLACK_CORRECTION_SEND},
        "close": {"type": "plain_text", "text": messages.SLACK_CORRECTION_CANCEL},
        "blocks": [
            mrkdwn(messages.SLACK_CORRECTION_PROMPT),
            {
                "type": "input",
                "block_id": CORRECTION_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": messages.SLACK_CORRECTION_LABEL},
                "element": {
                    "type": "plain_text_input",
                    "action_id": CORRECTION_INPUT,
                    "multiline": True,
                    "max_length": MAX_INPUT_CHARS,
                },
            },
        ],
    }


def _button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _escape(text: str) -> str:
    """User text shown back in mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
