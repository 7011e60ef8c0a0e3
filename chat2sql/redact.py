"""Keep passwords out of everything a person or a log can see."""

from __future__ import annotations

import logging
import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
# key=value secrets in DSNs and driver messages
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)\s*=\s*('[^']*'|\"[^\"]*\"|[^\s&;]+)")

MASK = "***"


def mask_url(url: str) -> str:
    """Render a database URL with its password masked.

    >>> mask_url("postgresql://bob:hunter2@db/sales")
    'postgresql://bob:***@db/sales'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return redact(url)


def redact(text: str, *secrets: str) -> str:
    """Mask URL passwords, ``password=...`` pairs and any of ``secrets`` in free text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    return _KV_PASSWORD.sub(lambda m: f"{m[1]}={MASK}", text)


def error_line(exc: BaseException, *secrets: str) -> str:
    """One redacted line from a driver error (SQLAlchemy's wrapped ``orig`` when there is one),
    e.g. 'connection refused', at most 300 characters."""
    original = getattr(exc, "orig", None) or exc
    text = redact(str(original), *secrets).strip()
    return (text.splitlines()[0] if text else type(original).__name__)[:300]


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
