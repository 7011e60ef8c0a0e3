"""The registry of databases chat2sql may query, in a real SQL store (SQLAlchemy 2).

Embedded SQLite by default, PostgreSQL in production; Alembic migrations bring any
existing registry up to date when it is opened. URLs are encrypted at rest and only
ever shown masked.

Registration refuses, before anything is stored: a URL with parts outside the allowlist
(``connect.parse_url``), chat2sql's own files and hosts outside
``CHAT2SQL_ALLOWED_DB_HOSTS`` (``connect.RegistrationPolicy``), and an account that can
do more than read, such as a superuser (``introspect.inspect_account``), unless the admin
says ``allow_privileged``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from chat2sql import db
from chat2sql.errors import (
    ConnectionFailed,
    DuplicateDatabase,
    InvalidFunctionName,
    InvalidName,
    PrivilegedAccount,
    UnknownDatabase,
)
from chat2sql.redact import error_line, mask_url
from chat2sql.settings import Settings
from schemas.connect import RegistrationPolicy, dialect_of, parse_url
from schemas.crypto import UrlCipher, load_key
from schemas.glossary import Glossary
from schemas.introspect import AccountReport, inspect_account_url, introspect_url
from schemas.model import DatabaseSchema
from schemas.tables import DatabaseRow
from schemas.values import ValueStore

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
FUNCTION_PATTERN = re.compile(r"[a-z_][a-z0-9_$]{0,62}(?:\.[a-z_][a-z0-9_$]{0,62})?")
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class RegisteredDatabase:
    """A registry entry as the rest of the code sees it: the URL only ever masked."""

    name: str
    url_masked: str
    dialect: str
    description: str
    registered_by: str
    registered_at: dt.datetime
    schema: DatabaseSchema
    schema_hash: str
    refreshed_at: dt.datetime
    account: AccountReport | None = None  # None: registered before accounts were checked
    allowed_functions: tuple[str, ...] = ()  # extra SQL functions an admin lets the guard accept

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "dialect": self.dialect,
            "url": self.url_masked,
            "description": self.description,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at.isoformat(),
            "tables": len(self.schema.tables),
            "schema_hash": self.schema_hash,
            "refreshed_at": self.refreshed_at.isoformat(),
            "account": None
            if self.account is None
            else {
                **self.account.model_dump(mode="json"),
                "privileged": self.account.privileged,
                "findings": self.account.findings(),
            },
            "allowed_functions": list(self.allowed_functions),
        }


class Introspector(Protocol):
    def __call__(self, url: str, *, name: str) -> DatabaseSchema: ...


class AccountChecker(Protocol):
    def __call__(self, url: str, *, name: str) -> AccountReport: ...


class LiveIntrospector:
    """Connects read-only and reads the schema; failures become a redacted ConnectionFailed."""

    def __init__(self, *, samples: int, timeout_s: float) -> None:
        self._samples = samples
        self._timeout_s = timeout_s

    def __call__(self, url: str, *, name: str) -> DatabaseSchema:
        return _connecting(url, name, lambda: introspect_url(url, samples=self._samples, timeout_s=self._timeout_s))


class LiveAccountChecker:
    """Connects read-only and asks the server what the account may do."""

    def __init__(self, *, timeout_s: float) -> None:
        self._timeout_s = timeout_s

    def __call__(self, url: str, *, name: str) -> AccountReport:
        return _connecting(url, name, lambda: inspect_account_url(url, timeout_s=self._timeout_s))


def _connecting(url: str, name: str, work: Callable[[], _T]) -> _T:
    password = parse_url(url).password or ""
    try:
        return work()
    except SQLAlchemyError as exc:
        raise ConnectionFailed(name, error_line(exc, str(password))) from None
    except RuntimeError as exc:  # PyMySQL refusing a server's LOAD DATA LOCAL request, say
        raise ConnectionFailed(name, error_line(exc, str(password))) from None


class Registry:
    def __init__(
        self,
        *,
        engine: Engine,
        cipher: UrlCipher,
        introspector: Introspector,
        accounts: AccountChecker,
        policy: RegistrationPolicy,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._introspect = introspector
        self._accounts = accounts
        self._policy = policy
        self.values = ValueStore(engine=engine, source=self)  # kept apart: get/list never load it

    @classmethod
    def open(cls, settings: Settings, *, introspector: Introspector | None = None) -> Registry:
        engine = db.open_migrated(settings, db.upgrade)
        return cls(
            engine=engine,
            cipher=UrlCipher(key=load_key(settings)),
            introspector=introspector
            or LiveIntrospector(samples=settings.sample_values, timeout_s=settings.introspect_timeout_s),
            accounts=LiveAccountChecker(timeout_s=settings.introspect_timeout_s),
            policy=RegistrationPolicy.from_settings(settings),
        )

    def close(self) -> None:
        db.release(self._engine)

    def add(
        self, name: str, url: str, *, description: str = "", registered_by: str, allow_privileged: bool = False
    ) -> RegisteredDatabase:
        """Validate, check the target and its account, introspect, then store; on any failure
        nothing is written."""
        validate_name(name)
        self._policy.check(parse_url(url))
        with Session(self._engine) as session:
            if session.scalar(select(DatabaseRow.id).where(DatabaseRow.name == name)) is not None:
                raise DuplicateDatabase(name)
        encrypted = self._cipher.encrypt(url)
        account = self._check_account(url, name=name, allow_privileged=allow_privileged)
        schema = self._introspect(url, name=name)
        now = dt.datetime.now(dt.UTC)
        row = DatabaseRow(
            name=name,
            url_encrypted=encrypted,
            url_masked=mask_url(url),
            dialect=dialect_of(url),
            description=description,
            registered_by=registered_by,
            registered_at=now,
            schema_json=schema.model_dump_json(),
            schema_hash=schema.hash,
            refreshed_at=now,
            account_json=account.model_dump_json(),
            allowed_functions="[]",
        )
        with Session(self._engine) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise DuplicateDatabase(name) from None
            entry = _entry(row)
        self.values.rebuild_quietly(name, url=url, schema=schema)  # after the schema is stored
        return entry

    def get(self, name: str) -> RegisteredDatabase:
        with Session(self._engine) as session:
            return _entry(self._row(session, name))

    def list(self) -> list[RegisteredDatabase]:
        with Session(self._engine) as session:
            return [_entry(r) for r in session.scalars(select(DatabaseRow).order_by(DatabaseRow.name))]

    def names(self) -> tuple[str, ...]:
        with Session(self._engine) as session:
            return tuple(session.scalars(select(DatabaseRow.name).order_by(DatabaseRow.name)))

    def connection_url(self, name: str) -> str:
        """The decrypted URL, for opening a connection; never display it."""
        with Session(self._engine) as session:
            return self._cipher.decrypt(self._row(session, name).url_encrypted)

    def refresh(self, name: str) -> tuple[RegisteredDatabase, bool]:
        """Re-check the account and re-introspect; returns the entry and whether the schema
        changed. An account that became privileged since registration is recorded, then refused."""
        url = self.connection_url(name)
        previous = self.get(name).account
        allow_privileged = previous is not None and previous.allowed_privileged
        account = self._accounts(url, name=name).model_copy(update={"allowed_privileged": allow_privileged})
        if account.privileged and not allow_privileged:
            self._store_account(name, account)
            raise PrivilegedAccount(name, tuple(account.findings()))
        schema = self._introspect(url, name=name)
        with Session(self._engine) as session:
            row = self._row(session, name)
            changed = row.schema_hash != schema.hash
            row.schema_json = schema.model_dump_json()
            row.schema_hash = schema.hash
            row.refreshed_at = dt.datetime.now(dt.UTC)
            row.account_json = account.model_dump_json()
            session.commit()
            entry = _entry(row)
        self.values.rebuild_quietly(name, url=url, schema=schema)  # even if unchanged: the data may not be
        return entry, changed

    def set_allowed_functions(self, name: str, functions: Iterable[str]) -> RegisteredDatabase:
        """Replace the extra SQL functions the guard may accept on ``name`` (lower-cased,
        ``func`` or ``schema.func``; sorted, without duplicates)."""
        cleaned = sorted({validate_function(f) for f in functions})
        with Session(self._engine) as session:
            row = self._row(session, name)
            row.allowed_functions = json.dumps(cleaned)
            session.commit()
            return _entry(row)

    def _check_account(self, url: str, *, name: str, allow_privileged: bool) -> AccountReport:
        account = self._accounts(url, name=name)
        if account.privileged and not allow_privileged:
            raise PrivilegedAccount(name, tuple(account.findings()))
        return account.model_copy(update={"allowed_privileged": allow_privileged and account.privileged})

    def _store_account(self, name: str, account: AccountReport) -> None:
        with Session(self._engine) as session:
            self._row(session, name).account_json = account.model_dump_json()
            session.commit()

    def remove(self, name: str) -> None:
        with Session(self._engine) as session:
            session.delete(self._row(session, name))
            session.commit()
        self.values.drop(name)
        self.glossary.drop_database(name)

    @property
    def glossary(self) -> Glossary:
        """The business glossary of the registered databases, kept in the registry's store."""
        return Glossary(engine=self._engine, schema_of=lambda name: self.get(name).schema)

    def _row(self, session: Session, name: str) -> DatabaseRow:
        row = session.scalar(select(DatabaseRow).where(DatabaseRow.name == name))
        if row is None:
            raise UnknownDatabase(name, self.names())
        return row


def validate_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise InvalidName(name)


def validate_function(function: str) -> str:
    """The function name as stored: lower case, ``func`` or ``schema.func``."""
    folded = (function or "").strip().lower()
    if not FUNCTION_PATTERN.fullmatch(folded):
        raise InvalidFunctionName(function)
    return folded


def _entry(row: DatabaseRow) -> RegisteredDatabase:
    return RegisteredDatabase(
        name=row.name,
        url_masked=row.url_masked,
        dialect=row.dialect,
        description=row.description,
        registered_by=row.registered_by,
        registered_at=_aware(row.registered_at),
        schema=DatabaseSchema.model_validate_json(row.schema_json),
        schema_hash=row.schema_hash,
        refreshed_at=_aware(row.refreshed_at),
        account=AccountReport.model_validate_json(row.account_json) if row.account_json else None,
        allowed_functions=tuple(json.loads(row.allowed_functions or "[]")),
    )


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite drops the time zone; every timestamp we write is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
