"""The registry database's foundation: the declarative ``Base`` of every table, one engine per
URL in a process, shared by every store that keeps rows there (the registry, the bot's state,
the API keys, the Slack and Teams stores), and migrated once while it lives.

``open_engine`` hands out a reference and ``release`` gives it back; the last release disposes
the engine, and a later ``open_engine`` starts (and migrates) afresh. An engine this module did
not hand out is simply disposed on release.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import DeclarativeBase

from chat2sql.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"  # beside chat2sql/, in every image
_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_references: dict[int, int] = {}  # id(engine) → how many holders
_migrated: set[int] = set()


class Base(DeclarativeBase):
    """Every table of the application maps onto this one metadata (Alembic compares against it)."""


def open_engine(settings: Settings) -> Engine:
    """The process's engine for the registry database of ``settings`` (one more holder)."""
    url = settings.effective_registry_url
    if settings.uses_embedded_registry:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = create_engine(url, pool_pre_ping=True)
        _references[id(engine)] = _references.get(id(engine), 0) + 1
        return engine


def open_migrated(settings: Settings, upgrade: Callable[[Engine], None]) -> Engine:
    """``open_engine``, then ``migrate``; a failed migration gives the reference back."""
    engine = open_engine(settings)
    try:
        migrate(engine, upgrade)
    except BaseException:
        release(engine)
        raise
    return engine


def migrate(engine: Engine, upgrade: Callable[[Engine], None]) -> None:
    """Run ``upgrade`` (Alembic to head) once per engine; another holder's call returns at once."""
    with _lock:
        if id(engine) in _migrated:
            return
        upgrade(engine)
        _migrated.add(id(engine))


def upgrade(engine: Engine) -> None:
    """Bring the database's tables to the newest migration (creating them if new)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def release(engine: Engine) -> None:
    """One holder is done; the last one disposes the engine."""
    with _lock:
        left = _references.get(id(engine), 0) - 1
        if left > 0:
            _references[id(engine)] = left
            return
        _references.pop(id(engine), None)
        _migrated.discard(id(engine))
        for url, held in list(_engines.items()):
            if held is engine:
                del _engines[url]
    engine.dispose()


def engines_open() -> int:
    """How many engines this module holds (start-up opens one per URL)."""
    with _lock:
        return len(_engines)
