"""Alembic environment: runs against the Database handed in by mailroom.storage.migrate."""

from __future__ import annotations

from alembic import context

from mailroom.storage.db import Database
from mailroom.storage.tables import metadata

database = context.config.attributes["database"]
assert isinstance(database, Database)

with database.engine.connect().execution_options(mailroom_write=True) as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
