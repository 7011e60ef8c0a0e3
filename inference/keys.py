"""API keys for the inference worker, stored hashed in the registry database.

A key is ``c2s_`` plus 32 random bytes (URL-safe base64). It is shown once, at creation;
the store keeps its SHA-256 and its first 8 characters for display. A fast hash is the
right one here: the key is random with 256 bits of entropy, so there is nothing for a slow
password hash to protect. Every ``authenticate`` reads the database (no cache), so a key
created or revoked by another process takes effect at once.

``admit`` is the one check of a presented key, for every surface that takes keys (the
worker's API, the bot's ``/mcp``): the bearer header, the key, its tier's token bucket.

``keys_main`` is the command line: ``create``, ``list [--json]``, ``revoke``.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import datetime as dt
import hashlib
import hmac
import json
import math
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import DateTime, Engine, String, Text, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from chat2sql import db, messages
from chat2sql.db import Base, upgrade
from chat2sql.errors import UserFacingError
from chat2sql.messages import registry_unusable
from chat2sql.ratelimit import TIERS, RateLimiter, RateLimiterUnavailable
from chat2sql.redact import error_line
from chat2sql.settings import Settings
from schemas.registry import NAME_PATTERN

KEY_PREFIX = "c2s_"
KEY_RANDOM_BYTES = 32
DISPLAY_PREFIX_CHARS = 8
# token_urlsafe(32) is 43 characters; anything far longer is not one of our keys.
MAX_PRESENTED_CHARS = 200

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    tier: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(DISPLAY_PREFIX_CHARS))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    databases_json: Mapped[str | None] = mapped_column(Text)  # NULL: every database (migration 0010)


# --- errors -------------------------------------------------------------------------------


class KeyStoreError(UserFacingError):
    """A key operation was refused; ``message`` is the sentence a person sees."""


class InvalidKeyName(KeyStoreError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    @property
    def message(self) -> str:
        return messages.invalid_key_name(self.name)


class InvalidTier(KeyStoreError):
    def __init__(self, tier: str) -> None:
        super().__init__(tier)
        self.tier = tier

    @property
    def message(self) -> str:
        return messages.invalid_tier(self.tier, TIERS)


class DuplicateKeyName(KeyStoreError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    @property
    def message(self) -> str:
        return messages.duplicate_key_name(self.name)


class InvalidDatabaseList(KeyStoreError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    @property
    def message(self) -> str:
        return messages.invalid_key_databases(self.name)


class UnknownKeyName(KeyStoreError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    @property
    def message(self) -> str:
        return messages.unknown_key_name(self.name)


# --- the store ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """A key as the rest of the code sees it: no secret, no hash."""

    name: str
    tier: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    databases: tuple[str, ...] | None = None  # the only databases it may use (MCP); None: every one

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def may_use(self, database: str) -> bool:
        return self.databases is None or database in self.databases

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "tier": self.tier,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "revoked": self.revoked,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "databases": list(self.databases) if self.databases is not None else None,
        }


class KeyStore:
    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, settings: Settings) -> KeyStore:
        """Open the registry database and bring its tables (``api_keys`` too) up to date."""
        engine = db.open_migrated(settings, upgrade)
        return cls(engine=engine)

    def close(self) -> None:
        db.release(self._engine)

    def create(self, name: str, tier: str, *, databases: Sequence[str] | None = None) -> str:
        """Store a new key and return it in plain text: the only time anyone sees it.
        ``databases`` limits what the key may use on the MCP server (None: every database)."""
        if not NAME_PATTERN.fullmatch(name or ""):
            raise InvalidKeyName(name)
        if tier not in TIERS:
            raise InvalidTier(tier)
        for database in databases or ():
            if not NAME_PATTERN.fullmatch(database):
                raise InvalidDatabaseList(database)
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
        row = ApiKeyRow(
            name=name,
            tier=tier,
            key_hash=_hash(key),
            prefix=key[:DISPLAY_PREFIX_CHARS],
            created_at=dt.datetime.now(dt.UTC),
            revoked_at=None,
            databases_json=None if databases is None else json.dumps(sorted(set(databases))),
        )
        with Session(self._engine) as session:
            if session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.name == name)) is not None:
                raise DuplicateKeyName(name)
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # another process took the name between check and insert
                raise DuplicateKeyName(name) from None
        return key

    def authenticate(self, presented: str) -> KeyInfo | None:
        """The key's info if ``presented`` is a live key, else None (never an error)."""
        if (
            not presented
            or len(presented) > MAX_PRESENTED_CHARS
            or not presented.isascii()
            or not presented.startswith(KEY_PREFIX)
        ):
            return None
        digest = _hash(presented)
        with Session(self._engine) as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest))
            if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
                return None
            return _info(row)

    def revoke(self, name: str) -> KeyInfo:
        """Revoke at once; revoking a revoked key keeps its first revocation time."""
        with Session(self._engine) as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None:
                raise UnknownKeyName(name)
            if row.revoked_at is None:
                row.revoked_at = dt.datetime.now(dt.UTC)
                session.commit()
            return _info(row)

    def list(self) -> builtins.list[KeyInfo]:
        with Session(self._engine) as session:
            return [_info(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.name))]


# --- admitting a request -----------------------------------------------------------------


class KeyInfoLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def tier(self) -> str: ...


class Authenticator(Protocol):
    def authenticate(self, presented: str) -> KeyInfoLike | None: ...


@dataclass(frozen=True)
class Refusal:
    """Why a request was not admitted, as an HTTP answer."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


async def admit(authorization: str, keys: Authenticator, limiter: RateLimiter, *, bucket: str) -> KeyInfoLike | Refusal:
    """The key of an ``Authorization: Bearer …`` header, charged one token from its tier's
    bucket (``bucket`` + the key's name), or the refusal: 401 (no key, not a live key, a tier
    this version does not have), 503 (the limiter is down), 429 with ``Retry-After``."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Refusal(401, "unauthorized", "Send the API key as 'Authorization: Bearer <key>'.", _BEARER)
    info = await asyncio.to_thread(keys.authenticate, token.strip())
    tier = TIERS.get(info.tier) if info is not None else None
    if info is None or tier is None:
        return Refusal(401, "unauthorized", "The API key is not valid.", _BEARER)
    try:
        decision = await limiter.acquire(f"{bucket}{info.name}", tier)
    except RateLimiterUnavailable:
        return Refusal(
            503, "rate_limiter_unavailable", "Rate limiting is unavailable; retry shortly.", {"Retry-After": "5"}
        )
    if not decision.allowed:
        retry = max(1, math.ceil(decision.retry_after_s))
        return Refusal(
            429, "rate_limited", f"Too many requests for this key; retry in {retry} s.", {"Retry-After": str(retry)}
        )
    return info


_BEARER = {"WWW-Authenticate": "Bearer"}


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        name=row.name,
        tier=row.tier,
        prefix=row.prefix,
        created_at=_aware(row.created_at),
        revoked_at=_aware(row.revoked_at) if row.revoked_at else None,
        databases=tuple(json.loads(row.databases_json)) if row.databases_json is not None else None,
    )


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite drops the time zone; every timestamp we write is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# --- command line -------------------------------------------------------------------------


def keys_main(argv: Sequence[str], *, settings: Settings) -> int:
    """``create`` prints only the key on stdout; errors are one line on stderr, exit 1."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage (or --help)
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        store = KeyStore.open(settings)
    except SQLAlchemyError as exc:
        return _fail(registry_unusable(error_line(exc)))
    try:
        return int(args.handler(args, store))
    except KeyStoreError as err:
        return _fail(err.message)
    except SQLAlchemyError as exc:
        return _fail(registry_unusable(error_line(exc)))
    finally:
        store.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference keys", description="Manage the inference worker's API keys."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("create", help="create a key and print it (shown only this once)")
    p.add_argument("--name", required=True)
    p.add_argument("--tier", required=True, help=f"one of: {', '.join(TIERS)}")
    p.add_argument(
        "--databases", default=None, help="comma-separated: the only databases the key may use on the MCP server"
    )
    p.set_defaults(handler=_create)

    p = sub.add_parser("list", help="list keys (never the secrets)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)

    p = sub.add_parser("revoke", help="revoke a key at once")
    p.add_argument("name")
    p.set_defaults(handler=_revoke)
    return parser


def _create(args: argparse.Namespace, store: KeyStore) -> int:
    databases = None if args.databases is None else [d.strip() for d in args.databases.split(",")]
    print(store.create(args.name, args.tier, databases=databases))
    return EXIT_OK


def _list(args: argparse.Namespace, store: KeyStore) -> int:
    keys = store.list()
    if args.json:
        print(json.dumps([k.to_json() for k in keys]))
        return EXIT_OK
    if not keys:
        print("no API keys (python -m inference keys create --tier TIER --name NAME)")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        scope = ",".join(k.databases) if k.databases is not None else "all databases"
        print(f"{k.name}\t{k.tier}\t{k.prefix}…\t{k.created_at:%Y-%m-%d %H:%M}\t{state}\t{scope}")
    return EXIT_OK


def _revoke(args: argparse.Namespace, store: KeyStore) -> int:
    store.revoke(args.name)
    print(f"revoked {args.name}")
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_FAIL
