"""The registry of databases chat2sql may query, in a real SQL store (SQLAlchemy 2).

Embedded SQLite by default, PostgreSQL in production; Alembic migrations bring any
existing registry up to date when it is opened. URLs are encrypted at rest and only
ever shown masked.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Engine, String, Text, create_engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from chat2sql.errors import ConnectionFailed, DuplicateDatabase, InvalidName, UnknownDatabase
from chat2sql.redact import error_line, mask_url
from chat2sql.settings import Settings
from schemas.connect import dialect_of, parse_url
from schemas.crypto import UrlCipher, load_key
from schemas.introspect import introspect_url
from schemas.model import DatabaseSchema

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


class DatabaseRow(Base):
    __tablename__ = "registered_databases"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    url_encrypted: Mapped[str] = mapped_column(Text)
    url_masked: Mapped[str] = mapped_column(Text)
    dialect: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    registered_by: Mapped[str] = mapped_column(String(255))
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    schema_json: Mapped[str] = mapped_column(Text)
    schema_hash: Mapped[str] = mapped_column(String(64))
    refreshed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


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
        }


class Introspector(Protocol):
    def __call__(self, url: str, *, name: str) -> DatabaseSchema: ...


class LiveIntrospector:
    """Connects read-only and reads the schema; failures become a redacted ConnectionFailed."""

    def __init__(self, *, samples: int, timeout_s: float) -> None:
        self._samples = samples
        self._timeout_s = timeout_s

    def __call__(self, url: str, *, name: str) -> DatabaseSchema:
        password = parse_url(url).password or ""
        try:
            return introspect_url(url, samples=self._samples, timeout_s=self._timeout_s)
        except SQLAlchemyError as exc:
            raise ConnectionFailed(name, error_line(exc, str(password))) from None


class Registry:
    def __init__(self, *, engine: Engine, cipher: UrlCipher, introspector: Introspector) -> None:
        self._engine = engine
        self._cipher = cipher
        self._introspect = introspector

    @classmethod
    def open(cls, settings: Settings, *, introspector: Introspector | None = None) -> Registry:
        url = settings.effective_registry_url
        if settings.uses_embedded_registry:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_pre_ping=True)
        upgrade(engine)
        return cls(
            engine=engine,
            cipher=UrlCipher(key=load_key(settings)),
            introspector=introspector
            or LiveIntrospector(samples=settings.sample_values, timeout_s=settings.introspect_timeout_s),
        )

    def close(self) -> None:
        self._engine.dispose()

    def add(self, name: str, url: str, *, description: str = "", registered_by: str) -> RegisteredDatabase:
        """Validate, connect, introspect, then store; on any failure nothing is written."""
        validate_name(name)
        parse_url(url)
        with Session(self._engine) as session:
            if session.scalar(select(DatabaseRow.id).where(DatabaseRow.name == name)) is not None:
                raise DuplicateDatabase(name)
        encrypted = self._cipher.encrypt(url)
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
        )
        with Session(self._engine) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise DuplicateDatabase(name) from None
            return _entry(row)

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
        """Re-introspect; returns the entry and whether the schema changed."""
        url = self.connection_url(name)
        schema = self._introspect(url, name=name)
        with Session(self._engine) as session:
            row = self._row(session, name)
            changed = row.schema_hash != schema.hash
            row.schema_json = schema.model_dump_json()
            row.schema_hash = schema.hash
            row.refreshed_at = dt.datetime.now(dt.UTC)
            session.commit()
            return _entry(row), changed

    def remove(self, name: str) -> None:
        with Session(self._engine) as session:
            session.delete(self._row(session, name))
            session.commit()

    def _row(self, session: Session, name: str) -> DatabaseRow:
        row = session.scalar(select(DatabaseRow).where(DatabaseRow.name == name))
        if row is None:
            raise UnknownDatabase(name, self.names())
        return row


def validate_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise InvalidName(name)


def upgrade(engine: Engine) -> None:
    """Bring the registry's tables to the newest migration (creating them if new)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


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
    )


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite drops the time zone; every timestamp we write is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
