"""Single-use authentication tokens: a token hash may be recorded once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailroom.storage.tables import auth_tokens


def record_once(conn: Connection, token_hash: str, expires_at: datetime) -> bool:
    """Record a token; False if it was already recorded (a replay).

    ``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL): the row count says whether
    this call recorded it, atomically, without a savepoint or an exception on replay.
    """
    values = {"token_hash": token_hash, "expires_at": expires_at}
    insert_stmt = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    stmt = insert_stmt(auth_tokens).values(**values).on_conflict_do_nothing(index_elements=["token_hash"])
    return bool(conn.execute(stmt).rowcount)


def forget_expired(conn: Connection, now: datetime) -> int:
    return conn.execute(delete(auth_tokens).where(auth_tokens.c.expires_at < now)).rowcount
