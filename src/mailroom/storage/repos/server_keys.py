"""SHIM (temporary)."""
from __future__ import annotations
from collections.abc import Callable
from datetime import datetime
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from mailroom.storage.tables import server_keys
def get_or_create(conn: Connection, name: str, make: Callable[[], bytes], now: datetime) -> bytes:
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(ins(server_keys).values(name=name, material=make(), created_at=now).on_conflict_do_nothing())
    return bytes(conn.execute(select(server_keys.c.material).where(server_keys.c.name == name)).scalar_one())
