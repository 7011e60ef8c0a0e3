"""Keep passwords out of everything a person or a log can see."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# scheme://user:password@host  ->  scheme://user:***@host; the password runs to the last '@'
# of the word, so an unencoded '@' in it ("p@ss@host") leaks nothing either.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>\S+)(?P<at>@)")
# key=value secrets in DSNs and driver messages
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)\s*=\s*('[^']*'|\"[^\"]*\"|[^\s&;]+)")
_SECRET_QUERY_KEY = re.compile(r"(?i)pass|pwd|secret|token")

MASK = "***"


def mask_url(url: str) -> str:
    """Render a database URL with its password masked.

    >>> mask_url("postgresql://bob:hunter2@db/sales")
    'postgresql://bob:***@db/sales'
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return redact(url)
    secret_keys = [k for k in parsed.query if _SECRET_QUERY_KEY.search(k)]
    if secret_keys:
        parsed = parsed.update_query_dict({k: MASK for k in secret_keys})
    return parsed.render_as_string(hide_password=True)


def redact(text: str, *secrets: str) -> str:
    """Mask URL passwords, ``password=...`` pairs and any of ``secrets`` in free text.

    A secret is masked with the whole whitespace-delimited word around it, never as a
    substring: replacing "ex" inside "expired" ("***pired") would tell which letters the
    password is.

    >>> redact("token expired for ex", "ex")
    'token *** for ***'
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m[1]}={MASK}", text)
    for secret in sorted(_spellings(secrets), key=len, reverse=True):
        mask = MASK if secret not in MASK else _ALT_MASK
        text = re.sub(rf"\S*{re.escape(secret)}\S*", mask, text)
    return text


_ALT_MASK = "[hidden]"  # for a secret that is part of MASK itself ("*"); no character in common


def _spellings(secrets: tuple[str, ...]) -> set[str]:
    """Each secret as given and as it appears percent-encoded in a URL."""
    found = set()
    for secret in secrets:
        if secret:
            found.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
    return found


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
