"""Text from chat made safe to store, show and prompt with: no terminal escapes, no control
characters, no bidi overrides.

A NUL cannot be stored in a PostgreSQL text column, an ANSI escape rewrites the terminal of
whoever reads the audit log or the console, and a right-to-left override makes a reply or a
database description read differently from what it says ("Trojan Source").

>>> clean_text("how many\\x00 \\x1b[31mred\\x1b[0m orders?\\u202e")
'how many red orders?'
>>> clean_text("line one\\n\\tline two")
'line one\\n\\tline two'
>>> one_line("  Sales\\n\\x1b]0;pwned\\x07data  ")
'Sales data'
"""

from __future__ import annotations

import re

# CSI (ESC [ … final, or the one-byte C1 CSI), OSC (ESC ] … BEL or ESC \), and two-byte ESC sequences.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# C0 controls but tab and newline, DEL, C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidi embeddings, overrides and isolates (U+202A–E, U+2066–9), LRM, RLM, Arabic letter mark.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def clean_text(text: str) -> str:
    """``text`` without ANSI escape sequences, control characters (tab and newline stay) or
    bidi controls; everything else is kept as it was."""
    return _BIDI.sub("", _CONTROL.sub("", _ANSI.sub("", text)))


def one_line(text: str) -> str:
    """``clean_text`` on one line: runs of whitespace, newlines included, become one space."""
    return " ".join(clean_text(text).split())


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, an ellipsis marking a cut.

    >>> cut("how many orders per country?", 12)
    'how many or…'
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"
