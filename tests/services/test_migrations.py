"""Alembic migrations build exactly the schema tables.py declares, and round-trip."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mailroom.storage.db import create_database
from mailroom.storage.migrate import current_revision, downgrade, head_revision, upgrade
from mailroom.storage.tables import metadata


def test_upgrade_from_empty_matches_the_table_definitions(tmp_path):
    db = create_database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(db)
    assert current_revision(db) == head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    db.dispose()


def test_downgrade_to_base_and_upgrade_again(tmp_path):
    db = create_database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(db)
    downgrade(db, "base")
    assert current_revision(db) is None
    upgrade(db)
    assert current_revision(db) == head_revision()
    db.dispose()
