"""Alembic environment: migrations run on the connection ``chat2sql.db.upgrade`` hands over,
or on CHAT2SQL_REGISTRY_URL when run from the ``alembic`` command line.

In process (``Registry``/``BotStore``/``KeyStore.open``) the migration scripts say everything
and no model is imported: a worker image ships without ``bot/``. Only the command line, where
``alembic revision --autogenerate`` compares the models with the database, maps every table.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine


def _run(connection: Connection, metadata: MetaData | None) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _every_table() -> MetaData:
    """Base.metadata with every table of the application mapped onto it (autogenerate)."""
    import bot.slack.threads
    import bot.tables
    import bot.teams.store
    import inference.keys
    import schemas.glossary
    import schemas.values
    from chat2sql.db import Base

    assert bot.slack.threads and bot.tables and bot.teams.store and inference.keys
    assert schemas.glossary and schemas.values
    return Base.metadata


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection, None)
else:
    from chat2sql.settings import Settings

    engine = create_engine(Settings().effective_registry_url)
    with engine.begin() as conn:
        _run(conn, _every_table())
