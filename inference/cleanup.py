"""Extract one SQL statement from what the model wrote, losing nothing inside it.

Unlike the seed implementation, this never drops non-ASCII characters and never touches
whitespace inside string literals: it only cuts what surrounds the statement (special
tokens, code fences, prose before or after, a second statement).

>>> extract_sql("Here:\\n```sql\\nSELECT name FROM t WHERE city = 'Zürich  Nord';\\n```\\nEnjoy")
"SELECT name FROM t WHERE city = 'Zürich  Nord'"
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"<\|[^|<>\s]{1,40}\|>")
_FENCE = re.compile(r"```[ \t]*(?:sql|SQL|sqlite|postgres(?:ql)?|mysql)?[ \t]*\n?(.*?)(?:```|$)", re.S)
_START = re.compile(r"\b(WITH|SELECT)\b", re.I)
_LINE_START = re.compile(r"^[ \t]*(WITH|SELECT)\b", re.I | re.M)  # prose may say "select" mid-line


def extract_sql(text: str) -> str:
    """The first SQL statement in ``text`` (without its semicolon), or '' when there is none."""
    # Whatever follows the first stop/special token is not part of the answer; a token at
    # the very start (a stray <|im_start|>) is just dropped.
    text = _SPECIAL.sub("", text, count=1) if _SPECIAL.match(text) else text
    text = _SPECIAL.split(text, maxsplit=1)[0]
    fenced = _FENCE.search(text)
    if fenced and _START.search(fenced.group(1)):
        text = fenced.group(1)
    start = _LINE_START.search(text) or _START.search(text)
    if start is None:
        return ""
    return _first_statement(text[start.start() :]).strip()


def _first_statement(text: str) -> str:
    """Up to the first semicolon outside quotes and comments, or to a blank line followed by prose."""
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and text.startswith(("--", "/*"), i):
            # A comment's apostrophes ("-- don't") are not quotes: skip to its end.
            end = text.find("\n" if ch == "-" else "*/", i + 2)
            i = len(text) if end < 0 else end + (0 if ch == "-" else 2)
            continue
        if quote:
            if ch == quote:
                if i + 1 < len(text) and text[i + 1] == quote:  # doubled quote escape
                    i += 1
                else:
                    quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";" or (ch == "\n" and text[i + 1 : i + 2] == "\n" and not _looks_like_sql(text[i + 2 :])):
            return text[:i]
        i += 1
    return text


def _looks_like_sql(rest: str) -> bool:
    head = rest.lstrip().split(None, 1)[0].upper() if rest.strip() else ""
    return head in {
        "FROM",
        "WHERE",
        "GROUP",
        "ORDER",
        "HAVING",
        "LIMIT",
        "JOIN",
        "LEFT",
        "RIGHT",
        "INNER",
        "UNION",
        "SELECT",
        "AND",
        "OR",
        "ON",
        "WITH",
        "OFFSET",
        "(",
        ")",
    }
