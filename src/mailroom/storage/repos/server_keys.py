"""Keys every server process shares (token signing, link signing, the receipt signing key).

A key is made by whichever process needs it first and kept in ``server_keys``: every process
that asks for the same name gets the same bytes, however many ask at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailroom.storage.tables import server_keys

#: A key name is chosen by code, never by a client; the column holds at most this many characters.
MAX_NAME = 100


def get(conn: Connection, name: str) -> bytes | None:
    """The key ``name``, or None if no process has made it yet."""
    material = conn.execute(select(server_keys.c.material).where(server_keys.c.name == name)).scalar()
    return None if material is None else bytes(material)


def get_or_create(conn: Connection, name: str, make: Callable[[], bytes], now: datetime) -> bytes:
    """The key ``name``, made with ``make()`` and stored first if no process has made it.

    Insert-if-absent (``INSERT ... ON CONFLICT DO NOTHING`` on both databases, the SQLite form
    being SQLite's ``INSERT OR IGNORE``), then read back: when two processes race, the primary
    key keeps the first insert, the second does nothing (on PostgreSQL it waits for the first to
    commit), and both read the one stored key. ``make`` is called only when the key is missing,
    so a key that exists costs one read. ``conn`` should be a write transaction.
    """
    if len(name) > MAX_NAME or not name:
        raise ValueError(f"a server key name has 1 to {MAX_NAME} characters")
    found = get(conn, name)
    if found is not None:
        return found
    material = make()
    if not material:
        raise ValueError("a server key must not be empty")
    insert_stmt = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    conn.execute(
        insert_stmt(server_keys)
        .values(name=name, material=material, created_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    stored = get(conn, name)
    if stored is None:  # cannot happen: the row was there or has just been inserted
        raise RuntimeError(f"server key {name!r} neither found nor stored")
    return stored
