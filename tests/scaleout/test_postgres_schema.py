"""The Alembic migrations on PostgreSQL: they build exactly what tables.py declares, round-trip,
and the types keep what Mailroom stores (aware UTC times, lengths, big sizes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, text
from tests.support import postgres

from mailroom.storage.db import create_database
from mailroom.storage.migrate import current_revision, downgrade, head_revision, upgrade
from mailroom.storage.tables import auth_tokens, metadata

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_database():
    postgres.require_postgres()
    with postgres.scratch_database("schema") as url:
        db = create_database(url, pool_size=1, max_overflow=1)
        try:
            yield db
        finally:
            db.dispose()


def test_upgrade_from_empty_matches_the_table_definitions(empty_database):
    upgrade(empty_database)
    assert current_revision(empty_database) == head_revision()
    with empty_database.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_downgrade_to_base_and_upgrade_again(empty_database):
    upgrade(empty_database)
    downgrade(empty_database, "base")
    assert current_revision(empty_database) is None
    with empty_database.engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()
        assert set(tables) <= {"alembic_version"}
    upgrade(empty_database)
    assert current_revision(empty_database) == head_revision()


def test_times_come_back_as_the_same_aware_utc_instant(empty_database):
    upgrade(empty_database)
    # stored in another offset, to the microsecond; the session time zone plays no part
    sent = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    with empty_database.write() as conn:
        conn.execute(text("SET LOCAL timezone = 'America/New_York'"))
        conn.execute(insert(auth_tokens), {"token_hash": "a" * 64, "expires_at": sent})
    with empty_database.read() as conn:
        back = conn.execute(select(auth_tokens.c.expires_at)).scalar_one()
        assert conn.execute(text("SHOW timezone")).scalar_one() == "UTC"
    assert back == sent
    assert back.tzinfo is UTC
