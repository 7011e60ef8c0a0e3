"""Encrypt registered database URLs at rest (Fernet), and find the key.

A stored URL is ``fernet:<token>``. Without a key, a URL that carries no password may be
stored as ``plain:<url>``; one with a password is refused. Only the embedded default
registry may generate a key, into the data dir, with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import make_url

from chat2sql.errors import MissingSecretKey, WrongSecretKey
from chat2sql.settings import Settings

log = logging.getLogger(__name__)

_FERNET = "fernet:"
_PLAIN = "plain:"


class UrlCipher:
    def __init__(self, *, key: bytes | None) -> None:
        self._fernet = Fernet(key) if key else None

    def encrypt(self, url: str) -> str:
        if self._fernet is not None:
            return _FERNET + self._fernet.encrypt(url.encode()).decode()
        if has_credentials(url):
            raise MissingSecretKey()
        return _PLAIN + url

    def decrypt(self, stored: str) -> str:
        if stored.startswith(_PLAIN):
            return stored[len(_PLAIN) :]
        if self._fernet is None:
            raise MissingSecretKey()
        try:
            return self._fernet.decrypt(stored[len(_FERNET) :].encode()).decode()
        except InvalidToken:
            raise WrongSecretKey() from None


def has_credentials(url: str) -> bool:
    parsed = make_url(url)
    return bool(parsed.password) or any("pass" in k.lower() for k in parsed.query)


def load_key(settings: Settings) -> bytes | None:
    """CHAT2SQL_SECRET_KEY, else (embedded registry only) a key file in the data dir."""
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().encode()
        try:
            Fernet(key)
        except ValueError:
            raise MissingSecretKey() from None
        return key
    if not settings.uses_embedded_registry:
        return None
    return _key_file(settings.secret_key_file)


def _key_file(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    log.warning(
        "generated an encryption key for the embedded registry; set CHAT2SQL_SECRET_KEY in production",
        extra={"fields": {"key_file": str(path)}},
    )
    return key
