"""Alembic environment: runs against the Database handed in by mailroom.storage.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from mailroom.storage.db import Database
from mailroom.storage.tables import metadata

#: Key of the PostgreSQL advisory lock held while migrating (any constant shared by all processes).
MIGRATION_LOCK = 0x4D41494C524F4F4D  # "MAILROOM"

database = context.config.attributes["database"]
assert isinstance(database, Database)

with database.engine.connect().execution_options(mailroom_write=True) as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # several processes may start at once: one migrates, the others wait and then find
            # the schema at head (SQLite's BEGIN IMMEDIATE does the same for it)
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
    connection.commit()
