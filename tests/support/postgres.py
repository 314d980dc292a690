"""Scratch PostgreSQL databases for tests, on the server at 127.0.0.1:5432 (or $MAILROOM_TEST_POSTGRES_URL).

Each test session creates its own database (``mailroom_test_<worker>_<pid>``), migrates it once
and empties it between tests; the database is dropped at the end. When
the server cannot be reached, tests skip, except under CI (``CI`` set), where they fail: a CI
run must never pass by silently leaving PostgreSQL out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from mailroom.storage.db import Database
from mailroom.storage.tables import metadata

ADMIN_URL = os.environ.get("MAILROOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _conninfo(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def unreachable_reason() -> str | None:
    try:
        with psycopg.connect(_conninfo(ADMIN_URL), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {make_url(ADMIN_URL).render_as_string()} is unreachable: {exc}"


def require_postgres() -> None:
    """Skip (fail under CI) unless the test server answers."""
    reason = unreachable_reason()
    if reason is None:
        return
    if in_ci():
        pytest.fail(reason + " (CI must run the PostgreSQL tests)", pytrace=False)
    pytest.skip(reason)


def database_name(label: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"mailroom_test_{label}_{worker}_{os.getpid()}".lower()
    return re.sub(r"[^a-z0-9_]", "_", name)[:63]


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A new empty database for the duration of the block → its SQLAlchemy URL."""
    name = database_name(label)
    with psycopg.connect(_conninfo(ADMIN_URL), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # a test database need not survive a power cut: commits stop waiting for the WAL flush
        admin.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name)))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_conninfo(ADMIN_URL), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def empty(db: Database) -> None:
    """Remove every row (the schema and the Alembic revision stay).

    ``DELETE`` rather than ``TRUNCATE``: on tables this small it takes 3 ms, TRUNCATE 20 ms.
    """
    with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
