"""The registry database's Alembic migrations, the top layer of the import order.

``chat2sql.db.upgrade`` runs them in process from this folder (no model imported: the worker
images ship without ``bot/``); ``env.py`` maps every table only for the ``alembic`` command line.
"""
