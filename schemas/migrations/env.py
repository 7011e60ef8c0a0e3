"""Alembic environment: migrations run on the connection the registry hands over,
or on CHAT2SQL_REGISTRY_URL when run from the ``alembic`` command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

import bot.slack.threads
import bot.store  # (maps the bot's tables onto Base.metadata for autogenerate)
import bot.teams.store  # noqa: F401  (maps the Teams tables onto Base.metadata for autogenerate)
import inference.keys  # noqa: F401  (maps api_keys onto Base.metadata for autogenerate)
from chat2sql.settings import Settings
from schemas.registry import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(Settings().effective_registry_url)
    with engine.begin() as conn:
        _run(conn)
